"""First run and the browser phone: a newcomer completes an opt-in in Chromium, without a phone."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_runner import run_ivr
from tests.conftest import SHOTS
from tests.live_server import server, wait_until_healthy

pytestmark = pytest.mark.slow


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`ivr serve` on an empty database, exactly as a newcomer starts it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "TWILIO_"))}
    env["IVR_DATABASE_URL"] = f"sqlite:///{tmp_path / 'ivr.db'}"
    log = tmp_path / "serve.log"
    with server(env, log) as (process, base):
        wait_until_healthy(base, process, log)
        yield base, env
    banner = log.read_text()
    assert "Demo Bakery (DEMO" in banner and "+15550100100" in banner


def ivr(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`ivr ARGS` in this process (tests/cli_runner.py) on the server's database; the server is the
    real process here."""
    return run_ivr(*args, env=env, drop=("IVR_", "TWILIO_"))


def test_home_page_explains_the_service_and_links_to_the_phone(browser, fresh_server) -> None:  # type: ignore[no-untyped-def]
    base, _ = fresh_server
    page = browser.new_page()
    page.goto(f"{base}/")
    assert page.locator("h1").inner_text() == "Collect WhatsApp opt-in consent by phone"
    assert "Demo Bakery" in page.inner_text("main") and "/twilio/voice" in page.inner_text("main")
    assert "TWILIO_AUTH_TOKEN is not set" in page.inner_text("main")
    page.get_by_role("link", name="Open the browser phone").click()
    page.wait_for_url(f"{base}/try")
    assert page.locator("h1").inner_text().startswith("Try a call")
    page.close()


def test_browser_phone_completes_an_opt_in_and_shows_the_receipt(browser, fresh_server) -> None:  # type: ignore[no-untyped-def]
    base, env = fresh_server
    page = browser.new_page(viewport={"width": 900, "height": 1300})
    page.goto(f"{base}/try")
    page.uncheck("#speak")
    page.fill("#from", "+15550100777")
    page.get_by_role("button", name="Call").click()
    transcript = page.locator("#transcript")
    transcript.get_by_text("For English, press 1.").wait_for()
    assert "Para español, pulse 2." in transcript.inner_text()
    page.get_by_role("button", name="Key 1").click()
    transcript.get_by_text("To agree to receive WhatsApp messages from Demo Bakery, press 1.").wait_for()
    page.get_by_role("button", name="Key 1").click()
    page.locator("#receipt").wait_for(state="visible")
    receipt = page.inner_text("#receipt")
    assert "opt_in" in receipt and "+15550100777" in receipt and "Demo Bakery" in receipt
    assert "order updates; delivery reminders" in receipt
    assert "Call ended: opt_in recorded." in page.inner_text("#status")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "try-receipt.png"), full_page=True)
    page.close()

    # The record is real, chained, and flagged demo: left out of exports unless asked for.
    assert ivr(env, "verify").returncode == 0
    assert ivr(env, "export", "--format", "jsonl").stdout == ""
    [line] = ivr(env, "export", "--format", "jsonl", "--include-demo").stdout.splitlines()
    record = json.loads(line)
    assert (record["phone"], record["action"], record["locale"]) == ("+15550100777", "opt_in", "en-US")
    assert record["record_hash"] in receipt


def test_browser_phone_spanish_caller_declines_in_spanish(browser, fresh_server) -> None:  # type: ignore[no-untyped-def]
    base, _ = fresh_server
    page = browser.new_page()
    page.goto(f"{base}/try")
    page.uncheck("#speak")
    page.get_by_role("button", name="Call").click()
    page.locator("#transcript").get_by_text("For English, press 1.").wait_for()
    page.get_by_role("button", name="Key 2").click()  # Spanish
    page.locator("#transcript").get_by_text("Para aceptar recibir mensajes de WhatsApp").wait_for()
    page.get_by_role("button", name="Key 2").click()  # declines
    page.locator("#receipt").wait_for(state="visible")
    assert "declined" in page.inner_text("#receipt") and "es-ES" in page.inner_text("#receipt")
    page.close()


def test_browser_phone_refuses_businesses_that_are_not_demo(fresh_server) -> None:  # type: ignore[no-untyped-def]
    import httpx

    base, env = fresh_server
    assert (
        ivr(
            env,
            "business",
            "add",
            "--name",
            "Real Co",
            "--number",
            "+15550002222",
            "--message-type",
            "offers",
        ).returncode
        == 0
    )
    response = httpx.post(f"{base}/try/api/calls", json={"to": "+15550002222", "from": "+15550100123"})
    assert response.status_code == 403
    bad = httpx.post(f"{base}/try/api/calls", json={"to": "+15550100100", "from": "12345"})
    assert bad.status_code == 400 and "E.164" in bad.json()["error"]
