"""Faults: the store failing and recovering, a restart mid-call, and what the logs may contain."""

from __future__ import annotations

import logging
import sqlite3

import httpx
import pytest

from consent_store import ExportFilter
from ivr.app import create_app
from ivr.twilio.emulator import TwilioEmulator
from tests.conftest import ACME_NUMBER, AUTH_TOKEN, CALLER, Service, make_settings

FAIL_WRITES = (
    "CREATE TRIGGER fail_{t} BEFORE INSERT ON {t} BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
)


def break_writes(db_url: str, broken: bool) -> None:
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as db:
        for table in ("events", "settings"):
            if broken:
                db.execute(FAIL_WRITES.format(t=table))
            else:
                db.execute(f"DROP TRIGGER fail_{table}")


async def test_healthz_reports_a_store_that_cannot_write_and_recovers_by_itself(service: Service) -> None:
    assert (await service.client.get("/healthz")).status_code == 200
    break_writes(service.db_url, True)
    sick = await service.client.get("/healthz")
    assert sick.status_code == 503 and "disk is full" in sick.json()["error"]
    call = await service.twilio.call(ACME_NUMBER, CALLER, ["1"], recording="none", status_callback=False)
    assert "we could not record your choice" in call.transcript
    break_writes(service.db_url, False)
    assert (await service.client.get("/healthz")).status_code == 200
    again = await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
    assert "Your choice has been recorded" in again.transcript
    assert (await service.store.verify()).intact


async def test_a_restart_between_the_prompt_and_the_key_press_loses_nothing(db_url: str) -> None:
    from ivr.businesses import add_business

    first = create_app(make_settings(db_url))
    async with first.router.lifespan_context(first):
        await add_business(first.state.runtime.store, "Acme", [ACME_NUMBER], ["offers"])
        await first.state.runtime.catalog.refresh()  # beside the running app: the catalog race
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=first), base_url="http://testserver"
        ) as c:
            twilio = TwilioEmulator(c, "http://testserver", AUTH_TOKEN)
            params = twilio.call_params("CA" + "6" * 32, ACME_NUMBER, CALLER)
            voice = await twilio.post("/twilio/voice", params)
    action = voice.text.split('action="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    second = create_app(make_settings(db_url))  # a new process: nothing kept in memory
    async with second.router.lifespan_context(second):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=second), base_url="http://testserver"
        ) as c:
            twilio = TwilioEmulator(c, "http://testserver", AUTH_TOKEN)
            pressed = await twilio.post(action, params | {"Digits": "1"})
            assert "Your choice has been recorded" in pressed.text
            rows = [r async for r in second.state.runtime.store.export_decisions(ExportFilter())]
    assert [(r.call_sid, r.action) for r in rows] == [("CA" + "6" * 32, "opt_in")]


async def test_logs_never_hold_a_full_phone_number_or_a_token(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # what `ivr serve` logs
    await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
    await service.twilio.call(ACME_NUMBER, "anonymous", ["1"])
    break_writes(service.db_url, True)
    await service.twilio.call(ACME_NUMBER, "+14155550124", ["2"], recording="none", status_callback=False)
    break_writes(service.db_url, False)
    await service.client.post("/twilio/voice", data={"From": CALLER})  # unsigned
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "recorded opt_in" in logged and "could not record" in logged
    for phone in (CALLER, "+14155550124"):
        assert phone not in logged and phone[1:] not in logged
    assert AUTH_TOKEN not in logged


async def test_session_cookie_is_secure_behind_https(db_url: str) -> None:
    from tests.test_manage_http import PASSWORD, sign_in
    from tests.user_hashes import quick_hash

    app = create_app(make_settings(db_url, public_url="https://ivr.example.com"))
    async with app.router.lifespan_context(app):
        await app.state.runtime.store.add_user("mia", "manager", quick_hash(PASSWORD), author="test")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://ivr.example.com"
        ) as c:
            response = await sign_in(c, "mia")
    assert response.status_code == 303 and "secure" in response.headers["set-cookie"].lower()
