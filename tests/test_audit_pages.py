"""Auditors find a decision in seconds and prove it: receipt, chain proof, standing, gaps in evidence."""

from __future__ import annotations

import html

import pytest

from consent_store import event_hash
from tests.cli_runner import run_ivr
from tests.conftest import ACME, ACME_NUMBER, CALLER, Service
from tests.test_manage_http import PASSWORD, sign_in
from tests.user_hashes import quick_hash


@pytest.fixture
async def auditor(service: Service) -> Service:
    await service.store.add_user("aldo", "auditor", quick_hash(PASSWORD), author="test")
    await sign_in(service.client, "aldo")
    return service


async def test_search_by_phone_finds_every_decision_of_that_number(auditor: Service) -> None:
    await auditor.twilio.call(ACME_NUMBER, CALLER, ["1"])
    await auditor.twilio.call(ACME_NUMBER, "+14155550999", ["2"])
    await auditor.twilio.call(ACME_NUMBER, CALLER, ["9"])
    page = await auditor.client.get("/audit", params={"phone": CALLER})
    assert "2 decisions found" in page.text
    assert page.text.count("opt_in</td>") == 1 and page.text.count("opt_out</td>") == 1
    assert "+14155550999" not in page.text
    declined = await auditor.client.get("/audit", params={"action": "declined", "business": ACME})
    assert "1 decision found" in declined.text and "+14155550999" in declined.text


@pytest.mark.parametrize(
    ("query", "message"),
    [({"phone": "555"}, "not a phone number"), ({"since": "yesterday"}, "not an ISO-8601")],
)
async def test_bad_search_input_says_what_is_wrong(
    auditor: Service, query: dict[str, str], message: str
) -> None:
    page = await auditor.client.get("/audit", params=query)
    assert page.status_code == 200 and message in html.unescape(page.text)


async def test_receipt_shows_what_was_heard_the_recording_the_proof_and_later_opt_out(
    auditor: Service,
) -> None:
    call = await auditor.twilio.call(ACME_NUMBER, CALLER, ["*", "1"])
    await auditor.twilio.call(ACME_NUMBER, CALLER, ["9"])
    page = await auditor.client.get("/audit/receipt", params={"call_sid": call.call_sid})
    text = html.unescape(page.text)
    assert page.status_code == 200
    consent = next(s.text for s in call.spoken if "To agree" in s.text)
    assert consent in text and (call.recording_sid or "") in text and "31 s" in text
    assert "= SHA-256(previous hash + body): matches" in text
    assert (
        "Latest for this number and business: <strong>opt_out</strong>" in text and "Later decisions" in text
    )
    [decision] = [e for e in await auditor.store.events_for_call(call.call_sid) if e.kind == "decision"]
    assert decision.body in text and event_hash(decision.prev_hash, decision.body) == decision.hash
    assert "call_status" in text and "recording" in text
    # Each event also in words: the repeat asked for, then the key, then the callbacks.
    assert "Played the consent prompt again, as the caller asked (en-US script version 1); prompt 2" in text
    assert "Pressed 1: opted in (en-US script version 1), 2 prompt(s) heard," in text
    assert f"Recording {call.recording_sid}: completed, 31 s." in text and "Call completed, 31 s." in text


async def test_decisions_without_a_recording_are_listed_as_incomplete_evidence(auditor: Service) -> None:
    absent = await auditor.twilio.call(ACME_NUMBER, CALLER, ["1"], recording="absent")
    good = await auditor.twilio.call(ACME_NUMBER, "+14155550999", ["1"])
    page = await auditor.client.get("/audit/incomplete")
    assert absent.call_sid[:12] in page.text and "recording absent" in page.text
    assert good.call_sid[:12] not in page.text
    receipt = await auditor.client.get("/audit/receipt", params={"call_sid": absent.call_sid})
    assert "evidence incomplete" in receipt.text


async def test_audit_pages_need_sign_in(service: Service) -> None:
    for path in ("/audit", "/audit/receipt?call_sid=x", "/audit/incomplete"):
        response = await service.client.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/login")


async def test_the_search_exports_as_a_streamed_file_identical_to_the_cli(auditor: Service, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    await auditor.twilio.call(ACME_NUMBER, CALLER, ["1"])
    await auditor.twilio.call(ACME_NUMBER, "+14155550999", ["2"])
    page = await auditor.client.get("/audit", params={"business": ACME})
    assert "/audit/export?business=Acme+Parcels&amp;format=csv" in page.text
    response = await auditor.client.get("/audit/export", params={"business": ACME, "format": "csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith('attachment; filename="consent-csv-')
    cli = await asyncio.to_thread(
        run_ivr, "export", "--business", ACME, env={"IVR_DATABASE_URL": auditor.db_url}
    )
    assert response.content == cli.stdout_bytes and response.content.count(b"\r\n") == 3
    receipts = await auditor.client.get("/audit/export", params={"action": "declined", "format": "receipts"})
    assert receipts.text.count("\n") == 1 and "+14155550999" in receipts.text
    assert (await auditor.client.get("/audit/export", params={"format": "xml"})).status_code == 400


@pytest.mark.parametrize("typed", ["+1 415 555 0123", "+1 (415) 555-0123", "+1-415-555-0123"])
async def test_a_phone_typed_with_spaces_or_dashes_finds_the_caller(auditor: Service, typed: str) -> None:
    await auditor.twilio.call(ACME_NUMBER, CALLER, ["1"])
    page = await auditor.client.get("/audit", params={"phone": typed})
    assert "1 decision found" in page.text and CALLER in page.text
