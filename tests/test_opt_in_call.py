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


async def test_caller_pressing_2_records_declined(service: Service) -> None:
    call = await service.twilio.call(ACME_NUMBER, CALLER, ["2"])
    assert "you will not receive WhatsApp messages from Acme Parcels" in call.transcript
    [row] = await decisions(service)
    assert (row.action, row.digits) == ("declined", "2")
    assert await service.store.standing(CALLER, ACME) is None


async def test_three_silences_say_goodbye_and_record_nothing(service: Service) -> None:
    call = await service.twilio.call(ACME_NUMBER, CALLER, ["-", "-", "-"])
    assert call.transcript.count("Sorry, we did not hear a key.") == 3
    assert call.transcript.count("To agree to receive WhatsApp messages") == 3
    assert "We have not recorded any choice" in call.transcript
    assert call.ended_by == "hangup"
    assert await decisions(service) == []


async def test_invalid_keys_reprompt_then_a_valid_key_counts(service: Service) -> None:
    call = await service.twilio.call(ACME_NUMBER, CALLER, ["7", "0", "1"])
    assert call.transcript.count("Sorry, that key is not one of the options.") == 2
    [row] = await decisions(service)
    assert row.action == "opt_in"


async def test_hash_alone_ends_the_gather_with_no_key_as_on_twilio(service: Service) -> None:
    # '#' is the Gather's finishOnKey: pressed before any digit, Twilio posts nothing and goes on
    # to the next verb (https://www.twilio.com/docs/api/twiml/gather), so the caller hears the
    # no-input reprompt, never an "invalid key" one.
    call = await service.twilio.call(ACME_NUMBER, CALLER, ["#", "1"])
    assert (
        "Sorry, we did not hear a key." in call.transcript and "not one of the options" not in call.transcript
    )
    assert call.pressed == ["#", "1"]
    [row] = await decisions(service)
    assert (row.action, row.digits) == ("opt_in", "1")


async def test_three_invalid_keys_hang_up_without_a_record(service: Service) -> None:
    call = await service.twilio.call(ACME_NUMBER, CALLER, ["7", "8", "9"])
    assert call.transcript.count("Sorry, that key is not one of the options.") == 3
    assert call.ended_by == "hangup" and await decisions(service) == []


async def test_star_repeats_the_prompt_without_using_an_attempt(service: Service) -> None:
    call = await service.twilio.call(ACME_NUMBER, CALLER, ["*", "*", "*", "1"])
    assert call.transcript.count("To agree to receive WhatsApp messages") == 4
    assert "Sorry" not in call.transcript
    [row] = await decisions(service)
    assert row.action == "opt_in"


async def test_repeat_caller_already_opted_in_is_offered_9_and_opts_out(service: Service) -> None:
    await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
    second = await service.twilio.call(ACME_NUMBER, CALLER, ["9"])
    assert "You have already agreed to receive delivery updates" in second.transcript
    assert "To stop these WhatsApp messages, press 9" in second.transcript
    assert "you will no longer receive WhatsApp messages from Acme Parcels" in second.transcript
    rows = await decisions(service)
    assert [r.action for r in rows] == ["opt_in", "opt_out"]
    assert rows[1].digits == "9"
    standing = await service.store.standing(CALLER, ACME)
    assert standing is not None and standing.action == "opt_out"
    third = await service.twilio.call(ACME_NUMBER, CALLER, ["-"])
    assert "To agree to receive WhatsApp messages" in third.transcript


async def test_opted_in_caller_pressing_1_again_is_not_a_choice(service: Service) -> None:
    await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
    second = await service.twilio.call(ACME_NUMBER, CALLER, ["1", "-", "-"])
    assert "Sorry, that key is not one of the options." in second.transcript
    assert [r.action for r in await decisions(service)] == ["opt_in"]


async def test_nine_is_not_an_option_for_a_caller_who_never_opted_in(service: Service) -> None:
    call = await service.twilio.call(ACME_NUMBER, CALLER, ["9", "-", "-"])
    assert "Sorry, that key is not one of the options." in call.transcript
    assert await decisions(service) == []


async def test_recording_starts_first_for_the_whole_call(service: Service) -> None:
    params = service.twilio.call_params("CA" + "1" * 32, ACME_NUMBER, CALLER)
    response = await service.twilio.post("/twilio/voice", params)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    body = response.text
    assert body.index("<Start><Recording") < body.index("<Gather")
    assert 'recordingStatusCallback="http://testserver/twilio/recording"' in body
    assert 'input="dtmf"' in body and 'numDigits="1"' in body
    assert '<Say language="en-US" voice="Polly.Joanna">' in body
