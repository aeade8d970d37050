"""The browser phone at /try: calls placed server-side through the real, signed webhooks.

The server plays Twilio's part with the project's emulator, over an in-process
transport to this same app, so a browser call takes exactly the path a real
call takes. Anyone may call a demo business; its records are flagged demo and
left out of exports. A signed-in manager may also rehearse calls to real businesses,
with the published or the draft script: a rehearsal writes nothing at all, so nobody
can record consent for a number that is not theirs.

Anonymous calls are limited per client address (CALLS_PER_MINUTE) and share a pool of
their own (MAX_ANONYMOUS_CALLS), so idle ones never lock managers out of rehearsals
(MAX_REHEARSALS). IVR_TRY=off turns the page and its API off (404).
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from consent_store import ExportFilter
from ivr.evidence.export import row_dict
from ivr.exceptions import EmulatorError, NotAPhoneNumber
from ivr.pages.auth import csrf_ok, current_user
from ivr.pages.web import templates
from ivr.phone_input import normalise_typed_phone
from ivr.runtime import Runtime
from ivr.twilio.emulator import NO_INPUT, CallResult, Spoken, TwilioEmulator, new_sid
from ivr.twilio.inbound import REHEARSAL_PARAM, simulated_mark
from ivr.twilio.message_emulator import MessageEmulator

# Calls in progress at once: anonymous demo calls, and managers' rehearsals (a pool each).
MAX_ANONYMOUS_CALLS = 40
MAX_REHEARSALS = 10
# Anonymous calls each client address may start a minute (each writes about four events).
CALLS_PER_MINUTE = 10
# Client addresses the rate remembers; the least recently seen is forgotten first.
MAX_TRACKED_ADDRESSES = 10_000
# Ended calls kept for a late key press or retry, at most this many and this long.
MAX_ENDED_CALLS = 500
ENDED_KEPT_SECONDS = 600
# A browser that stops answering is treated as silent after this long.
ABANDONED_AFTER_SECONDS = 120
STEP_WAIT_SECONDS = 30
KEYS = set("0123456789*#") | {NO_INPUT}
MAX_MESSAGE_BODY = 1600  # Twilio's limit for a message body
T = TypeVar("T")


@dataclass
class TryCall:
    """One call from a browser: the emulator runs it; the browser feeds keys."""

    to: str
    caller: str
    spoken: list[Spoken] = field(default_factory=list)
    sent: int = 0
    state: str = "running"  # running | waiting | ended
    timeout: int = 0
    keys: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    result: CallResult | None = None
    error: str | None = None
    touched: float = field(default_factory=time.monotonic)
    task: asyncio.Task[None] | None = None
    rehearsal: str | None = None  # a manager's rehearsal of a real business: nothing is recorded

    async def next_key(self, timeout: int) -> str:
        self.timeout, self.state = timeout, "waiting"
        self.changed.set()
        try:
            key = await asyncio.wait_for(self.keys.get(), timeout=timeout + ABANDONED_AFTER_SECONDS)
        except TimeoutError:
            key = NO_INPUT
        self.state = "running"
        return key

    async def run(self, twilio: TwilioEmulator) -> None:
        twilio.on_say = self.spoken.append
        try:
            if self.rehearsal is None:
                self.result = await twilio.call(self.to, self.caller, self.next_key)
            else:
                self.result = await twilio.call(
                    self.to,
                    self.caller,
                    self.next_key,
                    recording="none",
                    status_callback=False,
                    extra_params={REHEARSAL_PARAM: self.rehearsal},
                )
        except (EmulatorError, httpx.HTTPError) as exc:
            self.error = str(exc)
        finally:
            self.state = "ended"
            self.changed.set()


class CallRate:
    """At most `per_minute` calls per client address in any 60 seconds, remembering at most
    `max_addresses` addresses (so a flood of addresses cannot grow it without bound)."""

    def __init__(
        self, per_minute: int = CALLS_PER_MINUTE, max_addresses: int = MAX_TRACKED_ADDRESSES
    ) -> None:
        self.per_minute = per_minute
        self.max_addresses = max_addresses
        self._starts: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._starts)

    def allow(self, address: str, now: float | None = None) -> bool:
        """Count a call from `address` and say yes, or say no (and count nothing)."""
        now = time.monotonic() if now is None else now
        starts = self._starts.pop(address, None) or deque()
        while starts and now - starts[0] >= 60:
            starts.popleft()
        self._starts[address] = starts  # now the most recently seen
        while len(self._starts) > self.max_addresses:
            self._starts.popitem(last=False)
        if len(starts) >= self.per_minute:
            return False
        starts.append(now)
        return True

    def retry_after(self, address: str, now: float | None = None) -> int:
        """Seconds until `address` may call again."""
        now = time.monotonic() if now is None else now
        starts = self._starts.get(address)
        return max(1, math.ceil(60 - (now - starts[0]))) if starts else 1


def _state(request: Request, name: str, factory: Callable[[], T]) -> T:
    state = request.app.state
    if not hasattr(state, name):
        setattr(state, name, factory())
    value: T = getattr(state, name)
    return value


def _calls(request: Request) -> dict[str, TryCall]:
    calls: dict[str, TryCall] = _state(request, "try_calls", dict)
    now = time.monotonic()
    ended = sorted((c.touched, i) for i, c in calls.items() if c.state == "ended")  # oldest first
    excess = len(ended) - MAX_ENDED_CALLS
    for n, (touched, call_id) in enumerate(ended):
        if n < excess or now - touched > ENDED_KEPT_SECONDS:
            del calls[call_id]
    return calls


def _try_off(request: Request) -> bool:
    runtime: Runtime = request.app.state.runtime
    return not runtime.settings.try_phone


def _error(message: str, status: int = 400) -> Response:
    return JSONResponse({"error": message}, status_code=status)


async def _step(request: Request, call_id: str, call: TryCall) -> Response:
    """Wait until the call wants a key or has ended; answer with what was said meanwhile."""
    try:
        await asyncio.wait_for(call.changed.wait(), timeout=STEP_WAIT_SECONDS)
    except TimeoutError:
        return _error("the call did not answer in time", 504)
    call.changed.clear()
    call.touched = time.monotonic()
    spoken = [{"text": s.text, "language": s.language} for s in call.spoken[call.sent :]]
    call.sent = len(call.spoken)
    body: dict[str, Any] = {
        "id": call_id,
        "spoken": spoken,
        "state": call.state,
        "timeout": call.timeout,
        "rehearsal": call.rehearsal is not None,
    }
    if call.state == "ended":
        if call.error:
            return _error(f"the call failed: {call.error}", 502)
        body["receipt"] = None if call.rehearsal else await _receipt(request, call)
    return JSONResponse(body)


async def _receipt(request: Request, call: TryCall) -> dict[str, Any] | None:
    if call.result is None:
        return None
    store = request.app.state.runtime.store
    rows = [
        r
        async for r in store.export_decisions(ExportFilter(call_sid=call.result.call_sid, include_demo=True))
    ]
    return row_dict(rows[0]) if rows else None


async def try_page(request: Request) -> Response:
    if _try_off(request):
        return PlainTextResponse("Not Found", status_code=404)
    runtime: Runtime = request.app.state.runtime
    user = await current_user(request)
    manager = user is not None and user.can_edit
    businesses = [
        b
        for b in await runtime.store.list_businesses()
        if b.demo or (manager and user is not None and user.may_see(b.name))
    ]
    caller = f"+1555010{secrets.randbelow(10000):04d}"
    return templates.TemplateResponse(
        request,
        "try.html",
        {"businesses": businesses, "caller": caller, "manager": manager, "csrf": user.csrf if user else ""},
    )


async def start_call(request: Request) -> Response:
    if _try_off(request):
        return _error("the browser phone is off on this server (IVR_TRY=off)", 404)
    try:
        payload = await request.json()
        to, caller = str(payload["to"]), str(payload["from"])
    except (ValueError, KeyError, TypeError):
        return _error('send JSON {"to": "+1...", "from": "+1..."}')
    runtime: Runtime = request.app.state.runtime
    # Typed by a person ('+1 555 010 0123'): normalised as the CLI's options are (ivr.phone_input).
    try:
        caller = normalise_typed_phone(caller, runtime.settings.default_region)
    except NotAPhoneNumber as exc:
        return _error(f"your number {exc}")
    try:
        to = normalise_typed_phone(to, runtime.settings.default_region)
    except NotAPhoneNumber as exc:
        return _error(f"the number to call {exc}")
    business = await runtime.store.business_for_number(to)
    if business is None:
        return _error(f"no business answers {to}", 404)
    rehearsal = None
    if not business.demo:
        # Real businesses: only a manager, only as a rehearsal that records nothing, so nobody can
        # write consent for a number that is not theirs.
        user = await current_user(request)
        if user is None or not user.can_edit or not user.may_see(business.name):
            return _error("sign in as a manager to rehearse calls to your businesses", 403)
        if not csrf_ok(request, user, request.headers.get("X-CSRF-Token")):
            return _error("missing or wrong CSRF token; reload the page", 403)
        rehearsal = "draft" if payload.get("draft") else "published"
    calls = _calls(request)
    pool = MAX_ANONYMOUS_CALLS if rehearsal is None else MAX_REHEARSALS
    if (
        sum(1 for c in calls.values() if c.state != "ended" and (c.rehearsal is None) == (rehearsal is None))
        >= pool
    ):
        return _error("too many browser calls at once; try again in a minute", 429)
    if rehearsal is None:
        address = request.client.host if request.client else "unknown"
        rate: CallRate = _state(request, "try_call_rate", CallRate)
        if not rate.allow(address):
            wait = rate.retry_after(address)
            refused = _error(
                f"too many calls from your address: at most {CALLS_PER_MINUTE} calls a minute; "
                f"try again in {wait} s",
                429,
            )
            refused.headers["Retry-After"] = str(wait)
            return refused
    base = runtime.settings.public_url or "http://ivr.local"
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=request.app), base_url=base)
    twilio = TwilioEmulator(client, base, runtime.auth_token, runtime.settings.twilio_account_sid)
    call_id = secrets.token_urlsafe(16)
    call = TryCall(to=to, caller=caller, rehearsal=rehearsal)
    calls[call_id] = call

    async def run() -> None:
        async with client:
            await call.run(twilio)

    call.task = asyncio.create_task(run(), name=f"try-call-{call_id}")
    return await _step(request, call_id, call)


async def press_key(request: Request) -> Response:
    if _try_off(request):
        return _error("the browser phone is off on this server (IVR_TRY=off)", 404)
    call = _calls(request).get(request.path_params["call_id"])
    if call is None or call.state == "ended":
        return _error("no such call in progress", 404)
    try:
        key = str((await request.json())["key"])
    except (ValueError, KeyError, TypeError):
        return _error('send JSON {"key": "1"}')
    if key not in KEYS:
        return _error(f"{key!r} is not a phone key")
    if call.state != "waiting":
        return _error("the call is not waiting for a key", 409)
    call.keys.put_nowait(key)
    return await _step(request, request.path_params["call_id"], call)


async def send_message(request: Request) -> Response:
    """A WhatsApp message from the browser to a demo business, sent through the emulator as
    Twilio would; answers with the replies Twilio would send back and the receipt, if any.

    Demo businesses only, whoever asks: a message has no rehearsal, and an opt-out for a real
    business's customer must come from that customer."""
    if _try_off(request):
        return _error("the browser phone is off on this server (IVR_TRY=off)", 404)
    try:
        payload = await request.json()
        to, sender, body = str(payload["to"]), str(payload["from"]), str(payload["body"])
    except (ValueError, KeyError, TypeError):
        return _error('send JSON {"to": "+1...", "from": "+1...", "body": "STOP"}')
    if len(body) > MAX_MESSAGE_BODY:
        return _error(f"a message is at most {MAX_MESSAGE_BODY} characters")
    runtime: Runtime = request.app.state.runtime
    try:
        sender = normalise_typed_phone(sender, runtime.settings.default_region)
        to = normalise_typed_phone(to, runtime.settings.default_region)
    except NotAPhoneNumber as exc:
        return _error(f"the number {exc}")
    business = await runtime.store.business_for_number(to)
    if business is None or not business.demo:
        return _error(f"no demo business answers {to}", 404)
    address = request.client.host if request.client else "unknown"
    rate: CallRate = _state(request, "try_message_rate", CallRate)
    if not rate.allow(address):
        wait = rate.retry_after(address)
        refused = _error(f"too many messages from your address; try again in {wait} s", 429)
        refused.headers["Retry-After"] = str(wait)
        return refused
    base = runtime.settings.public_url or "http://ivr.local"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=request.app), base_url=base) as client:
        texting = MessageEmulator(
            TwilioEmulator(client, base, runtime.auth_token, runtime.settings.twilio_account_sid)
        )
        sid = new_sid("SM")
        mark = {REHEARSAL_PARAM: simulated_mark(runtime.auth_token, sid)}
        reply = await texting.send(to, sender, body, whatsapp=True, message_sid=sid, extra_params=mark)
    if reply.status_code != 200:
        return _error(f"the message was refused (HTTP {reply.status_code})", 502)
    rows = [r async for r in runtime.store.export_decisions(ExportFilter(call_sid=sid, include_demo=True))]
    return JSONResponse(
        {
            "message_sid": sid,
            "replies": list(reply.replies),
            "receipt": row_dict(rows[0]) if rows else None,
        }
    )


routes = [
    Route("/try", try_page, methods=["GET"]),
    Route("/try/api/messages", send_message, methods=["POST"]),
    Route("/try/api/calls", start_call, methods=["POST"]),
    Route("/try/api/calls/{call_id}/keys", press_key, methods=["POST"]),
]
