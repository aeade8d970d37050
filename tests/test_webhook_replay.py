"""Replayed and reshaped Twilio posts: a captured opt-in must never undo a later opt-out.

X-Twilio-Signature concatenates parameter names and values without separators, so a
signed post can be re-cut (`CallSid=<sid>CallStatusin-progress`, no `CallStatus`) and keep
its signature. The Gather state is therefore bound to its CallSid and business by our own
MAC, carries the time the call was answered, and every SID must have Twilio's form.
"""

from __future__ import annotations

import html
import json
import time
from types import SimpleNamespace
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from consent_store import Business, ExportFilter
from ivr.twilio.call_flow import START_PLACEHOLDER, CallContext, LoadedScript, stamp_start, start_call
from ivr.twilio.signature import expected_signature
from tests.conftest import ACME, ACME_NUMBER, AUTH_TOKEN, BILINGUAL_NUMBER, CALLER, Service
from voice_scripts import default_script_text, parse_script

OTHER_CALLER = "+14155550999"
HOUR_NS = 3600 * 10**9


def sid(prefix: str, n: int) -> str:
    return f"{prefix}{n:032x}"


async def event_count(service: Service) -> int:
    return (await service.store.verify()).count


async def decisions(service: Service) -> list:
    return [r async for r in service.store.export_decisions(ExportFilter())]


async def first_gather_url(
    service: Service, call_sid: str, phone: str = CALLER, to: str = ACME_NUMBER
) -> str:
    """The Gather action URL of a call's first TwiML, as Twilio would read it."""
    voice = await service.twilio.post("/twilio/voice", service.twilio.call_params(call_sid, to, phone))
    assert voice.status_code == 200, voice.text
    return html.unescape(voice.text.split('action="', 1)[1].split('"', 1)[0])


def with_query(url: str, **changes: str) -> str:
    """`url` with some of its query parameters changed in place (the rest, the MAC included, kept)."""
    parts = urlsplit(url)
    query = [(k, changes.get(k, v)) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return parts._replace(query=urlencode(query)).geturl()


async def test_a_recut_replay_of_an_old_opt_in_is_refused_and_the_opt_out_stands(service: Service) -> None:
    twilio = service.twilio
    opt_in = await twilio.call(ACME_NUMBER, CALLER, ["1"])
    gather_url, status = opt_in.responses[1]
    assert status == 200 and "/twilio/gather?" in gather_url
    captured = twilio.call_params(opt_in.call_sid, ACME_NUMBER, CALLER) | {"Digits": "1"}
    signature = twilio.sign(gather_url, captured)
    await twilio.call(ACME_NUMBER, CALLER, ["9"])  # later, the caller opts out
    standing = await service.store.standing(CALLER, ACME)
    assert standing is not None and standing.action == "opt_out"

    recut = {k: v for k, v in captured.items() if k != "CallStatus"}
    recut["CallSid"] = captured["CallSid"] + "CallStatus" + captured["CallStatus"]
    token = AUTH_TOKEN.encode()
    assert twilio.sign(gather_url, recut) == signature  # twilio's own validator cannot tell
    assert expected_signature(token, gather_url, list(recut.items())) == signature
    assert expected_signature(token, gather_url, list(captured.items())) == signature

    before = await event_count(service)
    replay = await twilio.post(gather_url, recut, signature=signature)
    assert replay.status_code == 400
    assert await event_count(service) == before
    assert [r.action for r in await decisions(service)] == ["opt_in", "opt_out"]
    standing = await service.store.standing(CALLER, ACME)
    assert standing is not None and standing.action == "opt_out"


async def test_a_state_from_another_calls_gather_url_is_refused(service: Service) -> None:
    first = await first_gather_url(service, sid("CA", 1))
    second = await first_gather_url(service, sid("CA", 2), OTHER_CALLER)  # from the cached first TwiML
    assert first != second
    before = await event_count(service)
    foreign = service.twilio.call_params(sid("CA", 2), ACME_NUMBER, OTHER_CALLER) | {"Digits": "1"}
    response = await service.twilio.post(first, foreign)
    assert response.status_code == 400
    assert await event_count(service) == before
    own = await service.twilio.post(second, foreign)
    assert own.status_code == 200 and "Your choice has been recorded" in own.text
    assert [(r.call_sid, r.action) for r in await decisions(service)] == [(sid("CA", 2), "opt_in")]


async def test_a_state_issued_for_one_business_is_refused_at_another(service: Service) -> None:
    url = await first_gather_url(service, sid("CA", 3))
    before = await event_count(service)
    elsewhere = service.twilio.call_params(sid("CA", 3), BILINGUAL_NUMBER, CALLER) | {"Digits": "1"}
    response = await service.twilio.post(url, elsewhere)
    assert response.status_code == 400
    assert await event_count(service) == before


@pytest.mark.parametrize(
    "changes",
    [{"p": "1000"}, {"t": "1"}, {"p": "1000", "t": "1"}, {"n": "2"}, {"r": "5"}, {"step": "subscribed"}],
)
async def test_a_tampered_state_is_refused_and_writes_nothing(
    service: Service, changes: dict[str, str]
) -> None:
    url = await first_gather_url(service, sid("CA", 4))
    tampered = with_query(url, **changes)
    assert tampered != url
    before = await event_count(service)
    params = service.twilio.call_params(sid("CA", 4), ACME_NUMBER, CALLER) | {"Digits": "1"}
    response = await service.twilio.post(tampered, params)
    assert response.status_code == 400
    assert await event_count(service) == before
    untouched = await service.twilio.post(url, params)
    assert untouched.status_code == 200
    [decision] = [json.loads(r.body)["data"] for r in await service.store.events_for_call(sid("CA", 4))]
    assert decision["prompts_heard"] == 1 and 0 <= decision["seconds_to_decision"] < 60


@pytest.mark.parametrize(
    ("answered_ns_ago", "accepted"),
    [
        (4 * HOUR_NS + 60 * 10**9, False),  # older than Twilio's default longest call
        (365 * 24 * HOUR_NS, False),
        (-10 * 60 * 10**9, False),  # answered ten minutes in the future
        (4 * HOUR_NS - 60 * 10**9, True),  # a very long call, still within the bound
    ],
)
async def test_a_state_too_old_or_from_the_future_is_refused(
    service: Service, monkeypatch: pytest.MonkeyPatch, answered_ns_ago: int, accepted: bool
) -> None:
    answered = SimpleNamespace(time_ns=lambda: time.time_ns() - answered_ns_ago)
    monkeypatch.setattr("ivr.twilio.webhooks.time", answered)
    url = await first_gather_url(service, sid("CA", 5))
    monkeypatch.undo()
    before = await event_count(service)
    params = service.twilio.call_params(sid("CA", 5), ACME_NUMBER, CALLER) | {"Digits": "1"}
    response = await service.twilio.post(url, params)
    if accepted:
        assert response.status_code == 200 and "Your choice has been recorded" in response.text
        assert [r.action for r in await decisions(service)] == ["opt_in"]
    else:
        assert response.status_code == 400
        assert await event_count(service) == before


BAD_CALL_SIDS = [
    "",
    "CA1",
    "CA" + "F" * 32,  # Twilio's SIDs are lower-case hex
    "CA" + "a" * 31,
    "CA" + "a" * 33,
    "RE" + "a" * 32,
    "CA" + "a" * 32 + "CallStatusin-progress",
    "CA" + "g" * 32,
    " CA" + "a" * 32,
]
BAD_RECORDING_SIDS = [
    "",
    "RE1",
    "RE" + "A" * 32,
    "CA" + "a" * 32,
    "RE" + "a" * 32 + "RecordingSourceStartCall",
]


@pytest.mark.parametrize("bad", BAD_CALL_SIDS)
@pytest.mark.parametrize("webhook", ["voice", "gather", "recording", "status"])
async def test_a_malformed_call_sid_is_refused_on_every_webhook(
    service: Service, webhook: str, bad: str
) -> None:
    twilio = service.twilio
    url = {
        "voice": "/twilio/voice",
        "gather": await first_gather_url(service, sid("CA", 6)),
        "recording": "/twilio/recording",
        "status": "/twilio/status",
    }[webhook]
    params = twilio.call_params(bad, ACME_NUMBER, CALLER) | {"Digits": "1", "CallDuration": "12"}
    if webhook == "recording":
        params = {"CallSid": bad, "RecordingSid": sid("RE", 6), "RecordingStatus": "completed"}
    before = await event_count(service)
    response = await twilio.post(url, params)
    assert response.status_code == 400
    assert await event_count(service) == before


@pytest.mark.parametrize("bad", BAD_RECORDING_SIDS)
async def test_a_malformed_recording_sid_is_refused(service: Service, bad: str) -> None:
    call = await service.twilio.call(ACME_NUMBER, CALLER, ["1"], recording="none")
    before = await event_count(service)
    params = {"CallSid": call.call_sid, "RecordingSid": bad, "RecordingStatus": "completed"}
    response = await service.twilio.post("/twilio/recording", params)
    assert response.status_code == 400
    assert await event_count(service) == before
    [row] = await decisions(service)
    assert row.recording_sid is None


@pytest.mark.parametrize("locales", [("en-US",), ("es-ES", "en-US")])
def test_a_cached_first_twiml_stamped_for_a_call_equals_one_built_for_it(locales: tuple[str, ...]) -> None:
    business = Business("Acme & Sons <Parcels>", ("+15550001111",), ("offers",), locales)
    scripts = {loc: LoadedScript(parse_script(default_script_text(loc)), 1) for loc in locales}
    cached = start_call(
        CallContext(business, scripts, False, "https://ivr.example.com"), "rec", START_PLACEHOLDER
    )
    key, started = b"k" * 32, 1_764_000_000_000
    for call_sid in (sid("CA", 7), sid("CA", 8)):
        sealed = CallContext(business, scripts, False, "https://ivr.example.com", call_sid, key)
        stamped = stamp_start(cached, started, key, call_sid, business.name)
        assert stamped == start_call(sealed, "rec", started)
        assert "unsealed" not in stamped and str(START_PLACEHOLDER) not in stamped
