"""No opt-in unless the caller heard the whole disclosure before the key, as on the real Twilio.

Twilio stops a <Gather>'s nested <Say> at the first digit, so the disclosure is said outside
the Gather; the emulator models that (a key written "!1" is pressed two seconds into the next
audio), and the webhooks keep what Twilio said about the caller and refuse statuses outside
Twilio's lists.
"""

from __future__ import annotations

import html
import logging
import xml.etree.ElementTree as ET

import httpx
import pytest

from consent_store import Business, ExportFilter
from ivr.twilio.call_flow import CallContext, LoadedScript, start_call
from ivr.twilio.disclosure import heard_parts
from ivr.twilio.emulator import AT_ONCE_SECONDS, WORDS_PER_SECOND, TwilioEmulator
from tests.conftest import ACME, ACME_NUMBER, AUTH_TOKEN, BILINGUAL_NUMBER, CALLER, Service
from tests.test_audit_pages import auditor  # noqa: F401 (a fixture)
from voice_scripts import default_script_text, parse_script
from voice_scripts.notice import notice_at, notice_words

TYPES = ("delivery updates", "appointment reminders")


async def decisions(service: Service) -> list:
    return [r async for r in service.store.export_decisions(ExportFilter())]


async def event_count(service: Service) -> int:
    return (await service.store.verify()).count


def _facts_heard(text: str, *, opt_out_key: bool) -> bool:
    said = all(fact in text for fact in (ACME, "WhatsApp", *TYPES, "no more than four messages a month"))
    return said and "This call is recorded" in text and ("press 9" in text) == opt_out_key


async def test_a_key_pressed_over_the_disclosure_is_no_choice_and_the_caller_opts_in_after_it(
    service: Service,
) -> None:
    call = await service.twilio.call(ACME_NUMBER, CALLER, ["!1", "1"])
    disclosure, instructions = call.spoken[0], call.spoken[1]
    assert not disclosure.interrupted and _facts_heard(disclosure.text, opt_out_key=True)
    assert call.dropped == ["1"] and call.pressed == ["1"]  # the early 1 reached nobody
    assert "press 1" in instructions.text and not instructions.interrupted
    [row] = await decisions(service)
    assert row.action == "opt_in"
    recorded = await service.store.spoken_text(row.script_sha256)
    assert recorded is not None and heard_parts(recorded) == (disclosure.text, instructions.text)


async def test_a_key_pressed_into_the_key_instructions_cuts_them_but_the_disclosure_was_whole(
    service: Service,
) -> None:
    heard: list[str] = []
    service.twilio.on_say = lambda spoken: heard.append(spoken.text)

    async def presses_once_asked(timeout: int) -> str:  # a KeySource: asked once the prompt is said
        return "1"

    call = await service.twilio.call(ACME_NUMBER, CALLER, presses_once_asked)
    assert heard[0] == call.spoken[0].text and not call.spoken[0].interrupted
    [row] = await decisions(service)
    assert row.action == "opt_in"
    recorded = await service.store.spoken_text(row.script_sha256)
    assert recorded is not None and heard_parts(recorded) is not None
    disclosure, _ = heard_parts(recorded) or ("", "")
    assert _facts_heard(disclosure, opt_out_key=True)


async def test_even_if_twilio_kept_a_key_pressed_over_the_disclosure_it_counts_only_after_all_of_it(
    service: Service,
) -> None:
    # Twilio's pages say such keys are not gathered; if it kept them for the next Gather, the key
    # would still be taken only once the whole disclosure had been played (a <Say> outside a Gather).
    service.twilio.early_keys = "buffered"
    call = await service.twilio.call(ACME_NUMBER, CALLER, ["!1"])
    assert not call.spoken[0].interrupted and _facts_heard(call.spoken[0].text, opt_out_key=True)
    assert call.dropped == [] and call.pressed == ["1"]
    assert "press 1" not in call.transcript.split("Thank you")[0]  # the instructions never started
    [row] = await decisions(service)
    recorded = await service.store.spoken_text(row.script_sha256)
    assert recorded is not None and recorded.startswith(call.spoken[0].text + "\n")


async def test_an_opted_in_caller_hears_the_disclosure_whole_before_the_opt_out_key(service: Service) -> None:
    await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
    call = await service.twilio.call(ACME_NUMBER, CALLER, ["!9", "9"])
    assert call.dropped == ["9"] and not call.spoken[0].interrupted
    assert _facts_heard(call.spoken[0].text, opt_out_key=False) and "press 9" in call.spoken[1].text
    assert [r.action for r in await decisions(service)] == ["opt_in", "opt_out"]


@pytest.mark.parametrize("locale", ["en-US", "es-ES"])
@pytest.mark.parametrize("opted_in", [False, True])
def test_every_fact_is_said_outside_the_gather_and_only_key_sentences_inside(
    locale: str, opted_in: bool
) -> None:
    business = Business(ACME, ("+15550001111",), TYPES, (locale,))
    scripts = {locale: LoadedScript(parse_script(default_script_text(locale)), 1)}
    root = ET.fromstring(start_call(CallContext(business, scripts, opted_in, "https://x.example"), "r", 1))
    outside = " ".join(say.text or "" for say in root.findall("Say"))
    inside = " ".join(say.text or "" for say in root.findall("Gather/Say"))
    words = notice_words(locale)
    assert words is not None and notice_at(outside, words) is not None  # "this call is recorded"
    for fact in (ACME, "WhatsApp", *TYPES, scripts[locale].script.frequency):
        assert fact.casefold() in outside.casefold(), fact
    assert (" 9." in outside) != opted_in  # how to opt out, before opting in; the key itself when in
    key = "9" if opted_in else "1"
    assert f" {key}." in inside and f" {key}." not in outside


def test_a_script_whose_facts_come_after_its_keys_is_said_outside_the_gather_whole() -> None:
    text = default_script_text("en-US").replace(
        'consent = """\n', 'consent = """\nTo agree, press {{ keys.opt_in | spoken_key }}.\n', 1
    )
    business = Business(ACME, ("+15550001111",), TYPES, ("en-US",))
    scripts = {"en-US": LoadedScript(parse_script(text), 1)}
    root = ET.fromstring(start_call(CallContext(business, scripts, False, "https://x.example"), "r", 1))
    [say] = root.findall("Say")
    assert (say.text or "").startswith("To agree, press 1.") and "press 9" in (say.text or "")
    gather = root.find("Gather")
    assert gather is not None and list(gather) == []  # the Gather only waits for the key


async def test_the_emulator_cuts_a_gathers_nested_prompt_at_the_key_as_twilio_does() -> None:
    """Against a service that says everything inside the Gather (the old way): '!1' is pressed two
    seconds in, the caller heard only those words, and the service still gets Digits=1."""
    prompt = " ".join(f"word{i}" for i in range(40))
    posts: list[dict[str, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        form = dict(httpx.QueryParams(request.content.decode()))
        posts.append(form)
        if "Digits" in form:
            return httpx.Response(200, text="<Response><Hangup/></Response>")
        gather = f'<Gather numDigits="1" action="/next"><Say>{prompt}</Say></Gather>'
        return httpx.Response(200, text=f"<Response>{gather}</Response>")

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://svc") as client:
        twilio = TwilioEmulator(client, "http://svc", AUTH_TOKEN)
        call = await twilio.call(ACME_NUMBER, CALLER, ["!1"], recording="none", status_callback=False)
    [spoken] = call.spoken
    assert (
        spoken.interrupted
        and spoken.text.split() == prompt.split()[: int(AT_ONCE_SECONDS * WORDS_PER_SECOND)]
    )
    assert posts[-1]["Digits"] == "1"
    # Twilio's own parameters: ringing on the first request, in-progress after; the caller's identity.
    assert [p["CallStatus"] for p in posts] == ["ringing", "in-progress"]
    assert posts[0]["StirVerstat"] == "TN-Validation-Passed-A" and posts[0]["FromCountry"] == "US"
    assert "CallerName" not in posts[0]


async def test_a_decision_keeps_what_twilio_said_about_the_caller_and_the_receipt_shows_it(
    auditor: Service,  # noqa: F811
) -> None:
    twilio = auditor.twilio
    twilio.stir_verstat, twilio.caller_name = "TN-Validation-Passed-B", "=HYPERLINK(evil)"
    vouched = await twilio.call(ACME_NUMBER, CALLER, ["1"])
    twilio.stir_verstat, twilio.from_country, twilio.caller_name = None, None, None
    unvouched = await twilio.call(BILINGUAL_NUMBER, "+14155550999", ["2", "2"])
    rows = {r.call_sid: r for r in await decisions(auditor)}
    first, second = rows[vouched.call_sid], rows[unvouched.call_sid]
    assert (first.stir_verstat, first.called_number, first.from_country, first.caller_name) == (
        "TN-Validation-Passed-B",
        ACME_NUMBER,
        "US",
        "=HYPERLINK(evil)",
    )
    assert first.account_sid == twilio.account_sid
    assert (second.stir_verstat, second.called_number, second.from_country, second.caller_name) == (
        None,
        BILINGUAL_NUMBER,
        None,
        None,
    )
    page = html.unescape(
        (await auditor.client.get("/audit/receipt", params={"call_sid": vouched.call_sid})).text
    )
    assert (
        "<code>TN-Validation-Passed-B</code>" in page
        and f"<dt>Number dialled</dt><dd>{ACME_NUMBER}</dd>" in page
    )
    assert (
        "Heard in full before any key counted" in page and "Then played while a key could be pressed" in page
    )
    other = html.unescape(
        (await auditor.client.get("/audit/receipt", params={"call_sid": unvouched.call_sid})).text
    )
    assert "not sent: the caller ID was not vouched for" in other and BILINGUAL_NUMBER in other


STATUSES = ["queued", "ringing", "in-progress", "completed", "busy", "failed", "no-answer", "canceled"]


@pytest.mark.parametrize("status", STATUSES)
async def test_each_of_twilios_call_statuses_is_recorded(service: Service, status: str) -> None:
    call = await service.twilio.call(ACME_NUMBER, CALLER, ["1"], status_callback=False)
    before = await event_count(service)
    response = await service.twilio.send_status(call, ACME_NUMBER, CALLER, status=status)
    assert response.status_code == 204 and await event_count(service) == before + 1


@pytest.mark.parametrize(
    "status", [f"completedCalled{ACME_NUMBER}", "Completed", "answered", "in progress", "completed "]
)
async def test_a_call_status_outside_twilios_list_is_refused_and_nothing_written(
    service: Service, status: str
) -> None:
    call = await service.twilio.call(ACME_NUMBER, CALLER, ["1"], status_callback=False)
    before = await event_count(service)
    response = await service.twilio.send_status(call, ACME_NUMBER, CALLER, status=status)
    assert response.status_code == 400 and "is not one of Twilio's" in response.text
    assert await event_count(service) == before


@pytest.mark.parametrize("status", ["completedRecordingUrl", "deleted", "processing", ""])
async def test_a_recording_status_outside_twilios_list_is_refused_and_nothing_written(
    service: Service, status: str
) -> None:
    call = await service.twilio.call(ACME_NUMBER, CALLER, ["1"], recording="none")
    assert call.recording_callback is not None
    before = await event_count(service)
    response = await service.twilio.send_recording(call, ACME_NUMBER, CALLER, status=status)
    assert response.status_code == 400 and await event_count(service) == before
    [row] = await decisions(service)
    assert row.recording_sid is None


@pytest.mark.parametrize(("timing", "code"), [("absent", "16101"), ("failed", None)])
async def test_an_absent_or_failed_recording_is_attached_and_its_error_code_logged(
    service: Service, caplog: pytest.LogCaptureFixture, timing: str, code: str | None
) -> None:
    with caplog.at_level(logging.WARNING, logger="ivr.twilio.webhooks"):
        call = await service.twilio.call(ACME_NUMBER, CALLER, ["1"], recording="none")
        response = await service.twilio.send_recording(
            call, ACME_NUMBER, CALLER, status=timing, error_code=code or "16105"
        )
    assert response.status_code == 204
    [row] = await decisions(service)
    assert row.recording_sid == call.recording_sid and row.recording_url is None
    assert f"is {timing} (ErrorCode {code or '16105'})" in caplog.text
