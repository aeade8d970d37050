"""A manager changes what callers hear in the browser; the policy check stops a bad script."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.cli_runner import run_ivr
from tests.conftest import SHOTS
from tests.live_server import SITE_PASSWORD

pytestmark = pytest.mark.slow

DEMO = "+15550100100"
NEW_WORDING = "We would love to keep you posted with"


def ivr(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`ivr ARGS` in this process (tests/cli_runner.py) on the site's database; `ivr serve` is the
    real process here."""
    return run_ivr(*args, env=env, drop=("IVR_", "TWILIO_"))


def test_manager_edits_sees_a_lint_error_fixes_it_and_callers_hear_the_new_wording(
    browser,  # type: ignore[no-untyped-def]
    site,
) -> None:
    base, env = site
    before = ivr(env, "call", "--to", DEMO, "--from", "+15550100001", "--keys", "11")
    assert "Recorded opt_in" in before.stdout

    page = browser.new_page(viewport={"width": 1000, "height": 1400})
    page.set_default_timeout(90_000)  # a busy machine; nothing here is timed
    page.goto(f"{base}/manage")
    assert page.url.startswith(f"{base}/login")
    page.fill("#name", "alice")
    page.fill("#password", SITE_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/manage")
    page.get_by_role("link", name="en-US").click()
    page.get_by_label("Advanced: edit as TOML").check()  # the TOML view, behind the switch
    page.locator("#text").wait_for()

    original = page.input_value("#text")
    broken = original.replace("We would like to send you", NEW_WORDING).replace(", {{ frequency }}.", ".", 1)
    page.fill("#text", broken)
    page.locator("#lint li.error", has_text="[frequency]").wait_for()
    assert page.is_disabled("#publish")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "manage-lint-error.png"), full_page=True)

    page.fill("#text", original.replace("We would like to send you", NEW_WORDING))
    page.locator("#lint li.ok").wait_for()
    assert NEW_WORDING in page.inner_text("#preview")
    page.click("#publish")
    page.get_by_role("dialog").get_by_role("button", name="Publish now").click()  # after the changes shown
    page.locator("#message", has_text="Published version 2").wait_for()
    assert "published" in page.inner_text("table") and "superseded" in page.inner_text("table")
    page.screenshot(path=str(SHOTS / "manage-published.png"), full_page=True)
    page.close()

    after = ivr(env, "call", "--to", DEMO, "--from", "+15550100002", "--keys", "11")
    assert NEW_WORDING in after.stdout and "Recorded opt_in" in after.stdout
    rows = [
        json.loads(line)
        for line in ivr(env, "export", "--format", "jsonl", "--include-demo").stdout.splitlines()
    ]
    assert [(r["phone"], r["script_version"]) for r in rows] == [("+15550100001", 1), ("+15550100002", 2)]
    assert rows[0]["script_sha256"] != rows[1]["script_sha256"]
    old = ivr(env, "script", "show", "--business", "Demo Bakery", "--locale", "en-US", "--version", "1")
    assert "We would like to send you" in old.stdout and NEW_WORDING not in old.stdout
    assert ivr(env, "verify").returncode == 0
