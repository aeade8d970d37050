"""Opt-outs by message or from the API are decisions without a call: the audit pages show them,
and nothing waits for (or asks Twilio for) a recording of them."""

from __future__ import annotations

import datetime as dt

from consent_store.recording_gaps import calls_to_reconcile, recording_gaps
from ivr.api import new_token, token_sha256
from ivr.auth import hash_password
from ivr.message_emulator import MessageEmulator
from tests.conftest import ACME, ACME_NUMBER, CALLER, Service
from tests.test_manage_http import PASSWORD, sign_in

API_CALLER = "+14155550999"


async def opt_outs_without_calls(service: Service) -> str:
    """A STOP by SMS from CALLER and an API opt-out for API_CALLER; the STOP's MessageSid."""
    reply = await MessageEmulator(service.twilio).send(ACME_NUMBER, CALLER, "STOP", whatsapp=False)
    assert reply.replies
    token = new_token()
    await service.store.add_api_token("crm", token_sha256(token), "test")
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
    assert await recording_gaps(service.store, later) == []  # type: ignore[arg-type]
    assert await calls_to_reconcile(service.store, later, "0000") == []  # type: ignore[arg-type]
    assert await service.store.incomplete_evidence(grace_minutes=-60) == []
    # A call's decision still is (the check is not simply off).
    await service.twilio.call(ACME_NUMBER, "+14155550777", ["1"])
    gaps = await recording_gaps(service.store, later)  # type: ignore[arg-type]
    assert len(gaps) == 1


async def test_the_audit_pages_show_them(service: Service) -> None:
    sid = await opt_outs_without_calls(service)
    await service.store.add_user("aldo", "auditor", hash_password(PASSWORD), author="test")
    await sign_in(service.client, "aldo")
    page = await service.client.get("/audit", params={"business": ACME})
    assert page.status_code == 200, page.text
    assert "2 decisions found" in page.text
    receipt = await service.client.get("/audit/receipt", params={"call_sid": sid})
    assert receipt.status_code == 200 and "opt_out" in receipt.text
