"""Twilio's retries, duplicate posts and callbacks in any order never duplicate or lose evidence."""

from __future__ import annotations

import sqlite3

import pytest

from consent_store import ExportFilter
from tests.conftest import ACME, ACME_NUMBER, CALLER, Service


async def rows(service: Service) -> list:
    return [r async for r in service.store.export_decisions(ExportFilter())]


def kinds(db_url: str) -> list[str]:
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as db:
        return [k for (k,) in db.execute("SELECT kind FROM events ORDER BY seq")]


@pytest.mark.parametrize("timing", ["before", "after", "twice"])
async def test_recording_joins_its_decision_whenever_it_arrives(service: Service, timing: str) -> None:
    call = await service.twilio.call(ACME_NUMBER, CALLER, ["1"], recording=timing)  # type: ignore[arg-type]
    [row] = await rows(service)
    assert row.recording_sid == call.recording_sid
    assert row.recording_url and row.recording_url.endswith(call.recording_sid or "")
    assert row.recording_duration == 31
    assert kinds(service.db_url).count("recording") == 1
    assert (await service.store.verify()).intact


async def test_recording_arriving_long_after_the_call_still_joins(service: Service) -> None:
    call = await service.twilio.call(ACME_NUMBER, CALLER, ["1"], recording="none")
    [row] = await rows(service)
    assert row.recording_sid is None
    await service.twilio.call(ACME_NUMBER, "+14155550999", ["2"])
    response = await service.twilio.send_recording(call, ACME_NUMBER, CALLER)
    assert response.status_code == 204
    first = (await rows(service))[0]
    assert first.recording_sid == call.recording_sid


async def test_replayed_decision_post_writes_once_and_confirms_the_same(service: Service) -> None:
    call = await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
    gather_url, _ = call.responses[1]
    params = service.twilio.call_params(call.call_sid, ACME_NUMBER, CALLER) | {"Digits": "1"}
    again = await service.twilio.post(gather_url, params)
    assert again.status_code == 200 and "Your choice has been recorded" in again.text
    assert len(await rows(service)) == 1


async def test_a_second_different_key_for_the_same_call_cannot_change_the_record(service: Service) -> None:
    call = await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
    gather_url, _ = call.responses[1]
    params = service.twilio.call_params(call.call_sid, ACME_NUMBER, CALLER) | {"Digits": "2"}
    again = await service.twilio.post(gather_url, params)
    assert "you will receive delivery updates" in again.text  # confirms what was recorded
    assert [r.action for r in await rows(service)] == ["opt_in"]


async def test_status_callback_records_how_the_call_ended_once(service: Service) -> None:
    call = await service.twilio.call(ACME_NUMBER, CALLER, ["-", "-", "-"])
    await service.twilio.send_status(call, ACME_NUMBER, CALLER)  # duplicate
    no_answer = await service.twilio.call(ACME_NUMBER, "+14155550777", [], status_callback=False)
    await service.twilio.send_status(no_answer, ACME_NUMBER, "+14155550777", status="no-answer", duration=0)
    assert kinds(service.db_url).count("call_status") == 2
    assert await rows(service) == []


async def test_failed_write_tells_the_caller_and_records_nothing_then_recovers(service: Service) -> None:
    path = service.db_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TRIGGER full BEFORE INSERT ON events "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
    call = await service.twilio.call(ACME_NUMBER, CALLER, ["1"], recording="none", status_callback=False)
    assert "we could not record your choice" in call.transcript
    assert "Your choice has been recorded" not in call.transcript
    assert call.ended_by == "hangup"
    assert await rows(service) == []
    with sqlite3.connect(path) as db:
        db.execute("DROP TRIGGER full")
    again = await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
    assert "Your choice has been recorded" in again.transcript
    [row] = await rows(service)
    assert row.call_sid == again.call_sid and row.business == ACME
    assert (await service.store.verify()).intact
