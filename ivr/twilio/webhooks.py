"""Twilio webhooks: check the signature, look things up, run the call flow, persist, answer.

A request without a valid X-Twilio-Signature gets 403 and writes nothing. A signature
cannot tell where one parameter ends (`CallSid=<sid>CallStatusin-progress` signs like the
two parameters), so a signed request is also refused with 400, writing nothing, when a
SID is not of Twilio's form or a Gather state was not issued for its call and business
(see call_flow.check_issued). A callback's CallStatus or RecordingStatus outside Twilio's
fixed lists is refused the same way (a re-cut body could otherwise store e.g.
`completedCalled+1555...` as a status). Decisions are committed before their confirmation
TwiML is returned, with what Twilio said about the caller (StirVerstat, To, AccountSid,
FromCountry, CallerName) verbatim.
"""

from __future__ import annotations

import dataclasses
import logging
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from consent_store import (
    Business,
    CallStatus,
    ConsentDecision,
    PromptPlayed,
    RecordingStatus,
    StoreError,
    text_sha256,
)
from consent_store.phone import is_e164, masked
from ivr.exceptions import InvalidCallState
from ivr.recordings import fetch as recording_fetch
from ivr.runtime import Runtime, request_runtime
from ivr.twilio.call_flow import (
    START_PLACEHOLDER,
    CallContext,
    GatherState,
    LoadedScript,
    Played,
    check_issued,
    confirmation,
    continue_call,
    rehearsal_confirmation,
    stamp_start,
    start_call,
    system_reply,
    unknown_number_reply,
    write_failed,
)
from ivr.twilio.inbound import REHEARSAL_PARAM as REHEARSAL_PARAM
from ivr.twilio.inbound import Form, _bad_sid, _not_one_of, _rehearsal, _simulated, _twiml
from ivr.twilio.inbound import _bad_request as _bad_request
from ivr.twilio.inbound import _forbidden as _forbidden
from ivr.twilio.inbound import _from_twilio as _from_twilio
from ivr.twilio.inbound import parse_urlencoded as parse_urlencoded
from ivr.twilio.inbound import simulated_mark as simulated_mark
from ivr.twilio.signature import twilio_sid_ok
from voice_scripts import ScriptError, parse_script

LOG = logging.getLogger(__name__)

RECORDING_PATH = "/twilio/recording"

# Twilio's call statuses, a fixed list: "queued, ringing, in-progress, completed, busy, failed,
# no-answer, canceled" (https://www.twilio.com/docs/voice/api/call-resource#call-status-values;
# the CallStatus of https://www.twilio.com/docs/usage/webhooks/voice-webhooks).
CALL_STATUSES = frozenset(
    ("queued", "ringing", "in-progress", "completed", "busy", "failed", "no-answer", "canceled")
)
# A recording status callback's RecordingStatus: "In-progress, Completed, Absent, Failed"
# (https://support.twilio.com/hc/en-us/articles/360014251313-Getting-Started-with-Recording-Status-Callbacks);
# absent and failed come with an ErrorCode (16101 too short, 16102 silent).
RECORDING_STATUSES = frozenset(("in-progress", "completed", "absent", "failed"))


async def _script(
    runtime: Runtime, business: Business, locale: str, version: int | None, rehearsal: str | None
) -> LoadedScript:
    if rehearsal == "draft" and version in (None, 0):
        draft = await runtime.store.script_draft(business.name, locale)
        if draft is not None:
            return LoadedScript(parse_script(draft.text), 0)
    if version is not None:
        return await runtime.catalog.version(business.name, locale, version)
    return await runtime.catalog.published(business.name, locale)


async def _context(
    runtime: Runtime,
    base_url: str,
    business: Business,
    phone: str,
    locale: str | None = None,
    version: int | None = None,
    rehearsal: str | None = None,
    opted_in: bool | None = None,
    call_sid: str | None = None,
) -> CallContext:
    """Scripts for the call: all published ones (or drafts in a rehearsal), or the version a caller heard.

    `opted_in` None: read the caller's standing (it decides which prompt they hear).
    `call_sid` None: Gather URLs are left unsealed (a first TwiML to cache and stamp per call).
    """
    if locale is not None and version is not None:
        scripts = {locale: await _script(runtime, business, locale, version, rehearsal)}
    else:
        scripts = {loc: await _script(runtime, business, loc, None, rehearsal) for loc in business.locales}
    if opted_in is None:
        standing = await runtime.store.standing(phone, business.name)
        opted_in = standing is not None and standing.action == "opt_in"
    return CallContext(business, scripts, opted_in, base_url, call_sid, runtime.gather_state_key)


async def _caller(runtime: Runtime, form: Form) -> tuple[Business | None, str, Response | None]:
    """Look up the called business and check the caller; a Response ends the call early."""
    call_sid, to, phone = (form.get(k) or "" for k in ("CallSid", "To", "From"))
    if not call_sid or not to:
        return None, phone, _bad_request("CallSid and To are required.")
    if not twilio_sid_ok(call_sid, "CA"):
        return None, phone, _bad_sid("CallSid", call_sid, "CA")
    business = await runtime.catalog.business_for_number(to)
    if business is None:
        LOG.info("call %s to unknown number %s", call_sid, to)
        return None, phone, _twiml(unknown_number_reply())
    if not is_e164(phone):
        LOG.info("call %s from a withheld or invalid number", call_sid)
        return business, phone, _twiml(system_reply("withheld", business.locales[0]))
    return business, phone, None


async def voice(request: Request) -> Response:
    """The number's Voice URL: start recording and ask (or offer the language menu)."""
    runtime, base_url, form = await _from_twilio(request)
    if form is None:
        return _forbidden()
    try:
        business, phone, early = await _caller(runtime, form)
        if early is not None:
            return early
        assert business is not None
        rehearsal = _rehearsal(form)
        call_sid = form["CallSid"]
        # A rehearsal's first TwiML is not cached: it is sealed for its call as it is built.
        sealed_for = call_sid if rehearsal is not None else None
        ctx = await _context(runtime, base_url, business, phone, rehearsal=rehearsal, call_sid=sealed_for)
        recording_url = ctx.base_url + RECORDING_PATH
        started = time.time_ns() // 1_000_000
        if rehearsal is not None:
            return _twiml(start_call(ctx, recording_url, started))
        # The first TwiML depends only on the business, its scripts, the caller's standing, the
        # time the call started and the call's MAC (the last two stamped into a cached copy).
        catalog = runtime.catalog
        key = ("start", await catalog.generation(), business.name, ctx.opted_in, ctx.base_url, recording_url)
        if key not in catalog.twiml:
            if len(catalog.twiml) > 1000:
                catalog.twiml.clear()
            catalog.twiml[key] = start_call(ctx, recording_url, START_PLACEHOLDER)
        return _twiml(stamp_start(catalog.twiml[key], started, ctx.state_key, call_sid, business.name))
    except (StoreError, ScriptError) as exc:
        LOG.error("voice webhook could not start call %s: %s", form.get("CallSid"), exc)
        return _twiml(system_reply("error"))


async def gather(request: Request) -> Response:
    """A Gather action (or the Redirect after it): a key pressed, or none."""
    runtime, base_url, form = await _from_twilio(request)
    if form is None:
        return _forbidden()
    query = request.scope["query_string"].decode("latin-1")
    try:
        state = GatherState.from_query(dict(parse_urlencoded(query)))
    except InvalidCallState as exc:
        return _bad_request(str(exc))
    now_ms = time.time_ns() // 1_000_000
    try:
        business, phone, early = await _caller(runtime, form)
        if business is not None:
            check_issued(query, state, runtime.gather_state_key, form["CallSid"], business.name, now_ms)
        if early is not None:
            return early
        assert business is not None
        if state.locale is not None and state.locale not in business.locales:
            return _bad_request(f"locale {state.locale!r} is not one of this business's locales.")
        rehearsal = _rehearsal(form)
        if state.version == 0 and rehearsal != "draft":
            return _bad_request("version 0 is a draft, heard only in a rehearsal.")
        # After the language menu the standing picks the prompt; later steps carry it in the state.
        opted_in = None if state.step == "language" else state.step == "subscribed"
        ctx = await _context(
            runtime,
            base_url,
            business,
            phone,
            state.locale,
            state.version,
            rehearsal,
            opted_in,
            call_sid=form["CallSid"],
        )
        reply = continue_call(ctx, state, form.get("Digits") or None, now_ms)
    except InvalidCallState as exc:
        LOG.warning("refused a Gather post for call %s: %s", form.get("CallSid"), exc)
        return _bad_request(str(exc))
    except (StoreError, ScriptError) as exc:
        LOG.error("gather webhook failed for call %s: %s", form.get("CallSid"), exc)
        return _twiml(system_reply("error", state.locale or "en-US"))
    if rehearsal is not None and reply.decide is not None:
        return _twiml(rehearsal_confirmation(ctx, reply.decide.locale, reply.decide.action))
    if reply.decide is None:
        if reply.played is not None and rehearsal is None:
            await _record_played(runtime, form["CallSid"], business.name, reply.played)
        return _twiml(reply.twiml)
    decide = reply.decide
    decision = ConsentDecision(
        call_sid=form["CallSid"],
        phone=phone,
        business=business.name,
        action=decide.action,
        message_types=business.message_types,
        digits=decide.digits,
        locale=decide.locale,
        script_version=decide.script_version,
        script_sha256=text_sha256(decide.spoken_text),
        spoken_text=decide.spoken_text,
        prompts_heard=decide.prompts_heard,
        seconds_to_decision=decide.seconds_to_decision,
        # Verbatim, None when Twilio did not send it: StirVerstat only comes with a SHAKEN
        # PASSporT (https://www.twilio.com/changelog/twilio-performs-shakenstir-verification-on-incoming-calls-to-your-phone-numbers),
        # CallerName only with caller name lookup, FromCountry only when Twilio can place the number.
        stir_verstat=form.get("StirVerstat"),
        called_number=form.get("To"),
        account_sid=form.get("AccountSid"),
        from_country=form.get("FromCountry"),
        caller_name=form.get("CallerName"),
        simulated=_simulated(runtime, form),
    )
    try:
        stored = await runtime.store.record_decision(decision)
    except StoreError as exc:
        LOG.error(
            "could not record %s for call %s (%s): %s", decide.action, decision.call_sid, masked(phone), exc
        )
        return _twiml(write_failed(ctx, decide.locale))
    LOG.info(
        "recorded %s for call %s (%s) as record %d",
        decide.action,
        decision.call_sid,
        masked(phone),
        stored.seq,
    )
    # A retried post confirms what was recorded the first time.
    action = str(stored.data["action"]) if stored.duplicate else decide.action
    return _twiml(confirmation(ctx, decide.locale, action))


async def _record_played(runtime: Runtime, call_sid: str, business: str, played: Played) -> None:
    """Record a prompt played; the call goes on if it cannot be (it is not consent)."""
    prompt = PromptPlayed(
        call_sid,
        business,
        played.prompt,
        played.reason,
        played.prompts_heard,
        played.locale,
        played.script_version,
    )
    try:
        await runtime.store.record_prompt(prompt)
    except StoreError as exc:
        LOG.warning("could not record the %s prompt of call %s: %s", played.prompt, call_sid, exc)


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


async def recording_status(request: Request) -> Response:
    """Recording status callback: attach the recording to the call's records."""
    runtime, base_url, form = await _from_twilio(request)
    if form is None:
        return _forbidden()
    call_sid, recording_sid = form.get("CallSid") or "", form.get("RecordingSid") or ""
    status = form.get("RecordingStatus") or ""
    if not call_sid or not recording_sid or not status:
        return _bad_request("CallSid, RecordingSid and RecordingStatus are required.")
    if not twilio_sid_ok(call_sid, "CA"):
        return _bad_sid("CallSid", call_sid, "CA")
    if not twilio_sid_ok(recording_sid, "RE"):
        return _bad_sid("RecordingSid", recording_sid, "RE")
    if status not in RECORDING_STATUSES:
        return _not_one_of("RecordingStatus", status, RECORDING_STATUSES)
    recording = RecordingStatus(
        call_sid=call_sid,
        recording_sid=recording_sid,
        status=status,
        url=form.get("RecordingUrl") or None,
        duration=_int_or_none(form.get("RecordingDuration")),
    )
    if status in ("absent", "failed"):
        LOG.warning(
            "recording %s of call %s is %s (ErrorCode %s): that call's evidence has no audio",
            recording_sid,
            call_sid,
            status,
            (form.get("ErrorCode") or "none")[:16],
        )
        code = form.get("ErrorCode") or ""
        if code.isascii() and code.isdigit() and len(code) <= 10:  # for /audit/incomplete; else dropped
            recording = dataclasses.replace(recording, error_code=code)
    try:
        await runtime.store.attach_recording(recording)
    except StoreError as exc:
        LOG.error("could not attach recording %s of call %s: %s", recording_sid, call_sid, exc)
        return PlainTextResponse("Service unavailable: recording not stored, retry.", status_code=503)
    if status == "completed":
        recording_fetch.wake(request.app)  # archived in the background: this answer never waits
    return Response(status_code=204)


async def call_status(request: Request) -> Response:
    """Call status callback: how the call ended."""
    runtime, base_url, form = await _from_twilio(request)
    if form is None:
        return _forbidden()
    call_sid, status = form.get("CallSid") or "", form.get("CallStatus") or ""
    if not call_sid or not status:
        return _bad_request("CallSid and CallStatus are required.")
    if not twilio_sid_ok(call_sid, "CA"):
        return _bad_sid("CallSid", call_sid, "CA")
    if status not in CALL_STATUSES:
        return _not_one_of("CallStatus", status, CALL_STATUSES)
    try:
        business = await runtime.catalog.business_for_number(form.get("To") or "")
        await runtime.store.record_call_status(
            CallStatus(
                call_sid=call_sid,
                status=status,
                duration=_int_or_none(form.get("CallDuration")),
                business=business.name if business else None,
            )
        )
    except StoreError as exc:
        LOG.error("could not record status %s of call %s: %s", status, call_sid, exc)
        return PlainTextResponse("Service unavailable: status not stored, retry.", status_code=503)
    return Response(status_code=204)


async def healthz(request: Request) -> Response:
    try:
        await request_runtime(request).store.ping()
    except StoreError as exc:
        return JSONResponse({"status": "unavailable", "error": str(exc)}, status_code=503)
    return JSONResponse({"status": "ok"})


routes = [
    Route("/twilio/voice", voice, methods=["POST"]),
    Route("/twilio/gather", gather, methods=["POST"]),
    # Status callbacks may be configured as GET in the Twilio console; the rest are POST.
    Route(RECORDING_PATH, recording_status, methods=["POST", "GET"]),
    Route("/twilio/status", call_status, methods=["POST", "GET"]),
    Route("/healthz", healthz, methods=["GET"]),
]
