"""The opt-in quality page, its CSV and `ivr stats`, with real calls through the Twilio emulator."""

from __future__ import annotations

import asyncio
import csv
import io
import json

import pytest
from click.testing import CliRunner

from ivr.cli.main import cli
from tests.cli_runner import ivr_with_env as ivr  # in-process; tests/live_server.py's ivr as was
from tests.conftest import ACME, ACME_NUMBER, SHOTS, Service
from tests.live_server import SITE_PASSWORD
from tests.test_manage_http import PASSWORD, sign_in
from tests.user_hashes import quick_hash


async def three_calls(service: Service) -> None:
    await service.twilio.call(ACME_NUMBER, "+14155550101", ["1"])  # opt in
    await service.twilio.call(ACME_NUMBER, "+14155550102", ["2"])  # decline
    await service.twilio.call(ACME_NUMBER, "+14155550103", ["-", "-", "-"])  # no key: goodbye


async def test_page_shows_charts_table_and_flags_to_an_auditor(service: Service) -> None:
    await three_calls(service)
    await service.store.add_user("aldo", "auditor", quick_hash(PASSWORD), author="test")
    await sign_in(service.client, "aldo")
    page = await service.client.get("/manage/quality", params={"business": ACME})
    assert page.status_code == 200
    assert page.text.count("<svg") == 2 and "<rect" in page.text and "<script" not in page.text
    assert 'id="quality"' in page.text and "en-US v1" in page.text
    assert "1 (33.3%)" in page.text  # one opt-in of three answered calls
    assert "/manage/quality.csv?business=Acme+Parcels" in page.text
    index = await service.client.get("/manage")
    assert "/manage/quality?business=Acme%20Parcels" in index.text


async def test_csv_holds_one_row_per_script_version_with_the_figures(service: Service) -> None:
    await three_calls(service)
    await service.store.add_user("mia", "manager", quick_hash(PASSWORD), author="test")
    await sign_in(service.client, "mia")
    response = await service.client.get("/manage/quality.csv", params={"business": ACME})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    [row] = list(csv.DictReader(io.StringIO(response.text)))
    assert (row["business"], row["locale"], row["script_version"]) == (ACME, "en-US", "1")
    assert (row["calls"], row["opt_in"], row["declined"], row["undecided"]) == ("3", "1", "1", "1")
    assert (row["hung_up"], row["no_input"]) == ("0", "1")  # the silent caller heard the goodbye
    assert (row["prompts_heard"], row["prompts_per_call"]) == ("5", "1.6667")  # 1 + 1 + 3 prompts
    assert 0 <= float(row["median_s_to_decision"]) < 30
    assert row["opt_in_rate"] == "0.3333" and row["median_duration_s"] == "31"


@pytest.mark.parametrize(
    ("query", "status"),
    [({"business": "Nobody"}, 404), ({"business": ACME, "since": "yesterday"}, 400)],
)
async def test_unknown_business_or_bad_date_is_refused(
    service: Service, query: dict[str, str], status: int
) -> None:
    await service.store.add_user("mia", "manager", quick_hash(PASSWORD), author="test")
    await sign_in(service.client, "mia")
    for path in ("/manage/quality", "/manage/quality.csv"):
        assert (await service.client.get(path, params=query)).status_code == status


@pytest.mark.parametrize("path", ["/manage/quality?business=Acme+Parcels", "/manage/quality.csv?business=x"])
async def test_anonymous_visitors_see_no_figures(service: Service, path: str) -> None:
    response = await service.client.get(path)
    assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")


async def test_stats_command_prints_a_table_and_json(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    await three_calls(service)
    monkeypatch.setenv("IVR_DATABASE_URL", service.db_url)
    runner = CliRunner()

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        # The command runs its own event loop: give it a thread of its own.
        return asyncio.to_thread(runner.invoke, cli, list(args))

    table = await invoke("stats", "--business", ACME)
    assert table.exit_code == 0, table.output
    assert "en-US   1" in table.output and "1 (33.3%)" in table.output and "flags: none" in table.output
    as_json = await invoke("stats", "--business", ACME, "--format", "json", "--since", "2000-01-01")
    figures = json.loads(as_json.output)
    assert figures["since"] == "2000-01-01T00:00:00.000000Z"
    assert [(s["calls"], s["opt_in"], s["undecided"]) for s in figures["scripts"]] == [(3, 1, 1)]
    unknown = await invoke("stats", "--business", "Nobody")
    assert unknown.exit_code != 0


@pytest.mark.slow
def test_quality_page_in_a_browser_shows_svg_charts_and_the_table(browser, site) -> None:  # type: ignore[no-untyped-def]
    base, env = site
    for keys, caller in (("11", "+15550100001"), ("12", "+15550100002"), ("21", "+15550100003")):
        assert ivr(env, "call", "--to", "+15550100100", "--from", caller, "--keys", keys).returncode == 0
    page = browser.new_page(viewport={"width": 1100, "height": 1400})
    page.goto(f"{base}/login?next=/manage")
    page.fill("#name", "alice")
    page.fill("#password", SITE_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/manage")
    page.get_by_role("link", name="Calls, decisions and later opt-outs per script version").click()
    page.locator("#quality").wait_for()
    assert page.locator("svg.chart").count() == 2 and page.locator("svg.chart rect").count() >= 3
    table = page.inner_text("#quality")
    assert "en-US v1" in table and "es-ES v1" in table
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "manage-quality.png"), full_page=True)
    page.close()
