"""The opt-in call end to end, through the real app, a real SQLite file and the emulator."""

from __future__ import annotations

from consent_store import ExportFilter
from tests.conftest import ACME, ACME_NUMBER, CALLER, Service


async def decisions(service: Service) -> list:
    return [row async for row in service.store.export_decisions(ExportFilter())]


async def test_caller_pressing_1_records_opt_in_with_recording(service: Service) -> None:
    call = await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
    assert "WhatsApp" in call.transcript and ACME in call.transcript
    assert "you will receive delivery updates and appointment reminders" in call.transcript
    assert call.ended_by == "hangup"
    [row] = await decisions(service)
    assert (row.phone, row.business, row.action, row.digits) == (CALLER, ACME, "opt_in", "1")
    assert row.message_types == ("delivery updates", "appointment reminders")
    assert row.recording_sid == call.recording_sid and row.recording_duration == 31
    assert row.call_sid == call.call_sid and row.locale == "en-US" and row.script_version == 1
    assert (await service.store.verify()).intact
