"""Opt-outs by message or from the API are decisions without a call: the audit pages show them,
and nothing waits for (or asks Twilio for) a recording of them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from consent_store import ExportFilter
from consent_store.columns import NAMES
from consent_store.recording_gaps import calls_to_reconcile, recording_gaps
from consent_store.sqlite import export as sqlite_export
from ivr.api.consent import new_token, token_sha256
from ivr.twilio.message_emulator import MessageEmulator
from tests.conftest import ACME, ACME_NUMBER, CALLER, Service
from tests.test_export_csv_fast_path import both_ways
from tests.test_manage_http import PASSWORD, sign_in
from tests.user_hashes import quick_hash

API_CALLER = "+14155550999"


async def opt_outs_without_calls(service: Service, token_name: str = "crm") -> str:
    """A STOP by SMS from CALLER and an API opt-out for API_CALLER; the STOP's MessageSid."""
    reply = await MessageEmulator(service.twilio).send(ACME_NUMBER, CALLER, "STOP", whatsapp=False)
    assert reply.replies
    token = new_token()
    await service.store.add_api_token(token_name, token_sha256(token), "test")
    answer = await service.client.post(
        "/api/opt-outs",
        json={"phone": API_CALLER, "business": ACME, "channel": "email"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 201
    return reply.message_sid


async def test_no_recording_is_awaited_or_looked_for_for_them(service: Service) -> None:
    await opt_outs_without_calls(service)
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert await recording_gaps(service.store, later) == []
    assert await calls_to_reconcile(service.store, later, "0000") == []
    assert await service.store.incomplete_evidence(grace_minutes=-60) == []
    # A call's decision still is (the check is not simply off).
    await service.twilio.call(ACME_NUMBER, "+14155550777", ["1"])
    gaps = await recording_gaps(service.store, later)
    assert len(gaps) == 1


async def test_the_audit_pages_show_them(service: Service) -> None:
    sid = await opt_outs_without_calls(service)
    await service.store.add_user("aldo", "auditor", quick_hash(PASSWORD), author="test")
    await sign_in(service.client, "aldo")
    page = await service.client.get("/audit", params={"business": ACME})
    assert page.status_code == 200, page.text
    assert "2 decisions found" in page.text
    receipt = await service.client.get("/audit/receipt", params={"call_sid": sid})
    assert receipt.status_code == 200 and "opt_out" in receipt.text


async def test_sqlite_fast_csv_writes_the_channel_as_the_renderer_does(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(4):  # each kind four times: the first windows (IN_FLIGHT) go the slow way
        await service.twilio.call(ACME_NUMBER, f"+1415555077{n}", ["1"])
        await opt_outs_without_calls(service, f"crm{n}")
    await service.store.close()  # the fast path reads the file with a store of its own
    monkeypatch.setattr(sqlite_export, "WINDOW", 1)
    fast, expected, slow_rows = await both_ways(
        Path(service.db_url.removeprefix("sqlite:///")), ExportFilter(include_demo=True)
    )
    assert fast == expected
    lines = expected.decode().splitlines()
    assert slow_rows < len(lines)  # some decisions, with their channel cells, came from SQL
    at = NAMES.index("channel")
    assert [line.split(",")[at] for line in lines] == ["voice", "sms", "email"] * 4
