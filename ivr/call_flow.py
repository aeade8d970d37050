"""The opt-in call as a pure state machine: (call state, keys pressed) -> (TwiML, decision).

No I/O here. Call state travels in the signed Gather action URL (never in
process memory), so a call survives a server restart between its Gather and
the action. A decision is returned as `Decide`; the webhook records it and
only then asks for the confirmation TwiML, so a caller never hears a
confirmation of something that was not written.

Twilio stops a <Gather>'s nested audio at the first digit, so the consent and subscribed
prompts say their disclosure outside the Gather, where nothing cuts it, and only their key
instructions inside (ivr.disclosure); a decision records both, as played before its key.

Twilio's signature cannot tell where one parameter ends and the next begins, so
the state is never trusted on it alone: its query string ends with our own MAC
(`m`) binding it to the CallSid and business it was issued for, and it carries
when the call was answered (`t`); `check_issued` refuses anything else.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal
from urllib.parse import urlencode

from twilio.twiml.voice_response import Gather, VoiceResponse

from consent_store import Action, Business, text_sha256
from consent_store.events import PromptName, PromptReason
from ivr.disclosure import Hearing, split_prompt
from voice_scripts import RenderContext, Script, language_for, render_prompt

Step = Literal["language", "consent", "subscribed"]
STEPS: tuple[Step, ...] = ("language", "consent", "subscribed")
MAX_ATTEMPTS = 3
MAX_REPEATS = 5
MAX_PROMPTS_HEARD = 1000  # far above what MAX_ATTEMPTS and MAX_REPEATS allow; a bound for the URL
# The start time in a cached first TwiML: 13 digits like a real one (epoch ms), replaced per call.
START_PLACEHOLDER = 9_999_999_999_999
GATHER_TIMEOUT_SECONDS = 7
# A Gather post is refused once its call was answered longer ago than Twilio's default maximum
# call length, 4 hours (an account can raise it to 24; this flow's calls last minutes), see
# https://www.twilio.com/en-us/blog/introducing-configurable-call-limits-for-programmable-voice
# or further in the future than another server's clock could be.
MAX_CALL_MS = 4 * 3600 * 1000
CLOCK_SKEW_MS = 60 * 1000
# The MAC in a first TwiML made for the cache (or a preview): each call gets its own, see stamp_start.
UNSEALED = "unsealed"

# The language of the service's own words when no business locale is known (an unknown number,
# an error before a locale was chosen). What it says in each language is in voice_scripts/locales/.
SYSTEM_LOCALE = "en-US"
SystemText = Literal["withheld", "error"]


class InvalidCallState(ValueError):
    """The Gather action URL does not describe a call state we issued."""


@dataclass(frozen=True)
class LoadedScript:
    """A parsed script version. What is rendered from it is kept with it: a version never changes."""

    script: Script
    version: int
    # (business, message types, prompt, menu key) -> text; ("twiml", ...) -> a finished TwiML
    memo: dict[tuple[object, ...], str] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class CallContext:
    """What the webhook looked up for this call."""

    business: Business
    scripts: Mapping[str, LoadedScript]
    opted_in: bool
    base_url: str
    call_sid: str | None = None  # None: Gather URLs carry UNSEALED instead of a MAC
    state_key: bytes = b""

    def render(self, locale: str, prompt: str, menu_key: str = "") -> str:
        loaded = self.scripts[locale]
        key = (self.business.name, self.business.message_types, prompt, menu_key)
        text = loaded.memo.get(key)
        if text is None:
            context = RenderContext(business=self.business.name, message_types=self.business.message_types)
            text = loaded.memo[key] = render_prompt(loaded.script, prompt, context, menu_key=menu_key)
        return text

    def hearing(self, locale: str, step: Step) -> Hearing:
        """The `step` prompt (consent or subscribed) as disclosure and key instructions."""
        loaded = self.scripts[locale]
        key = ("hearing", self.business.name, self.business.message_types, step)
        record = loaded.memo.get(key)
        if record is None:
            text = self.render(locale, step)
            hearing = split_prompt(text, loaded.script, self.business.name, self.business.message_types, step)
            record = loaded.memo[key] = hearing.record
        return Hearing.from_record(record)


@dataclass(frozen=True)
class GatherState:
    """Where the caller is, carried in the Gather action URL's query string."""

    step: Step
    attempt: int = 1
    repeats: int = 0
    locale: str | None = None
    version: int | None = None
    prompt_sha: str | None = None
    heard: int = 1  # prompts played so far, the one this Gather belongs to included
    started: int | None = None  # when the call was answered, ms since the epoch (server clock)

    def to_query(self) -> dict[str, str]:
        query = {"step": self.step, "n": str(self.attempt), "r": str(self.repeats), "p": str(self.heard)}
        if self.started is not None:
            query["t"] = str(self.started)
        if self.locale is not None and self.version is not None and self.prompt_sha is not None:
            query |= {"locale": self.locale, "v": str(self.version), "h": self.prompt_sha}
        # In name order, with the MAC (MAC_PARAM) last: Twilio has been reported to sort an
        # action URL's query before requesting it while signing it as given (twilio-php #790,
        # twilio-node #1079); a URL already in order reads the same either way.
        return dict(sorted(query.items()))

    def next(
        self,
        *,
        step: Step | None = None,
        attempt: int | None = None,
        repeats: int | None = None,
        locale: str | None = None,
    ) -> GatherState:
        """The state of the next prompt played in this call (one more prompt heard)."""
        return replace(
            self,
            heard=self.heard + 1,
            step=step or self.step,
            attempt=self.attempt if attempt is None else attempt,
            repeats=self.repeats if repeats is None else repeats,
            locale=locale or self.locale,
        )

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> GatherState:
        step = query.get("step", "")
        if step not in STEPS:
            raise InvalidCallState(f"unknown step {step!r}")
        try:
            attempt = int(query.get("n", "1"))
            repeats = int(query.get("r", "0"))
            version = int(query["v"]) if "v" in query else None
            heard = int(query.get("p", "1"))
            started = int(query["t"]) if "t" in query else None
        except ValueError as exc:
            raise InvalidCallState(
                "attempt, repeats, prompts, time and version must be whole numbers"
            ) from exc
        if not 1 <= attempt <= MAX_ATTEMPTS or not 0 <= repeats <= MAX_REPEATS:
            raise InvalidCallState("attempt or repeat count out of range")
        if not 1 <= heard <= MAX_PROMPTS_HEARD or (
            started is not None and not 0 < started <= START_PLACEHOLDER
        ):
            raise InvalidCallState("prompt count or start time out of range")
        state = cls(
            step=step,
            attempt=attempt,
            repeats=repeats,
            locale=query.get("locale"),
            version=version,
            prompt_sha=query.get("h"),
            heard=heard,
            started=started,
        )
        if step != "language" and (state.locale is None or state.version is None or not state.prompt_sha):
            raise InvalidCallState(f"step {step!r} needs locale, v and h")
        return state


@dataclass(frozen=True)
class Decide:
    """A decision to record before the caller hears its confirmation."""

    action: Action
    digits: str
    locale: str
    script_version: int
    spoken_text: str  # the disclosure heard whole, a line break, the key instructions (ivr.disclosure)
    prompts_heard: int
    started: int | None  # ms since the epoch, when the call was answered


@dataclass(frozen=True)
class Played:
    """A prompt played after a key press or a silence, for the webhook to record."""

    prompt: PromptName
    reason: PromptReason
    prompts_heard: int
    locale: str | None
    script_version: int | None


@dataclass(frozen=True)
class Reply:
    twiml: str
    decide: Decide | None = None
    played: Played | None = None


def prompt_fingerprint(text: str) -> str:
    return text_sha256(text)[:16]


def _say(target: VoiceResponse | Gather, script: Script, text: str) -> None:
    target.say(text, voice=script.voice, language=script.language)


def _system_say(target: VoiceResponse, text: str, locale: str) -> None:
    """`text` said in the system voice of the locale's language (voice_scripts/locales/)."""
    system = language_for(locale).system
    target.say(text, voice=system.voice, language=system.say_language)


def unknown_number_reply() -> str:
    response = VoiceResponse()
    _system_say(response, language_for(SYSTEM_LOCALE).system.unknown_number, SYSTEM_LOCALE)
    response.hangup()
    return str(response)


def system_reply(key: SystemText, locale: str = SYSTEM_LOCALE) -> str:
    """A fixed message and hang-up, for when no script can be used. UnknownLanguage (a ScriptError)
    when the locale's language has no file: never another language's words."""
    response = VoiceResponse()
    system = language_for(locale).system
    _system_say(response, system.withheld if key == "withheld" else system.error, locale)
    response.hangup()
    return str(response)


# Stands for the Gather URL in a prompt's TwiML kept for reuse; each reply puts its own URL there.
_URL_TOKEN = "https://gather.invalid/next"


@functools.lru_cache(maxsize=8)
def _keyed_hmac(key: bytes) -> hmac.HMAC:
    # Copying an HMAC already keyed skips hashing the key's pads on every state (about half the cost).
    return hmac.new(key, digestmod=hashlib.sha256)


# The Gather state's MAC: named to sort after every other parameter of the state.
MAC_PARAM = "z"


def state_mac(key: bytes, call_sid: str, business: str, query: str) -> str:
    """The MAC that binds a Gather state's query string to one call of one business (128 bits, hex)."""
    mac = _keyed_hmac(key).copy()
    mac.update(f"{call_sid}\n{len(business)}:{business}\n{query}".encode())
    return mac.digest()[:16].hex()


def check_issued(
    query: str, state: GatherState, key: bytes, call_sid: str, business: str, now_ms: int
) -> None:
    """Raise InvalidCallState unless `query` (the Gather URL's, which `state` was read from) is one we
    issued for this call of this business, in a call answered at most MAX_CALL_MS before `now_ms`."""
    sealed, _, mac = query.rpartition(f"&{MAC_PARAM}=")
    expected = state_mac(key, call_sid, business, sealed)
    if not sealed or not hmac.compare_digest(mac.encode("utf-8", "replace"), expected.encode()):
        raise InvalidCallState("the call state was not issued for this call")
    if state.started is None or not now_ms - MAX_CALL_MS <= state.started <= now_ms + CLOCK_SKEW_MS:
        raise InvalidCallState("the call state is too old, or from the future")


def _gather_url(ctx: CallContext, state: GatherState) -> str:
    query = urlencode(state.to_query())
    mac = UNSEALED
    if ctx.call_sid is not None:
        mac = state_mac(ctx.state_key, ctx.call_sid, ctx.business.name, query)
    return f"{ctx.base_url}/twilio/gather?{query}&{MAC_PARAM}={mac}"


def _gather(
    ctx: CallContext, state: GatherState, response: VoiceResponse | None, url: str | None = None
) -> tuple[VoiceResponse, Gather, str]:
    response = response if response is not None else VoiceResponse()
    url = url or _gather_url(ctx, state)
    gather = Gather(input="dtmf", num_digits=1, timeout=GATHER_TIMEOUT_SECONDS, action=url, method="POST")
    return response, gather, url


def _finish(response: VoiceResponse, gather: Gather, url: str) -> str:
    response.append(gather)
    # No key before the timeout: Twilio falls through to this Redirect without Digits.
    response.redirect(url, method="POST")
    return str(response)


def _language_menu(
    ctx: CallContext, state: GatherState, preface: str | None, response: VoiceResponse | None = None
) -> str:
    response, gather, url = _gather(ctx, state, response)
    first = ctx.scripts[ctx.business.locales[0]].script
    if preface is not None:
        _say(gather, first, ctx.render(ctx.business.locales[0], preface))
    for index, locale in enumerate(ctx.business.locales, start=1):
        _say(gather, ctx.scripts[locale].script, ctx.render(locale, "language_menu", menu_key=str(index)))
    return _finish(response, gather, url)


def _prompt(
    ctx: CallContext,
    locale: str,
    attempt: int,
    repeats: int,
    preface: str | None,
    step: Step | None = None,
    response: VoiceResponse | None = None,
    progress: GatherState | None = None,
) -> str:
    """A consent (or opt-out) prompt; `progress` is the state it is played in (heard, started)."""
    step = step or _consent_step(ctx)
    loaded = ctx.scripts[locale]
    text = ctx.render(locale, step)
    state = GatherState(
        step=step,
        attempt=attempt,
        repeats=repeats,
        locale=locale,
        version=loaded.version,
        prompt_sha=prompt_fingerprint(text),
        heard=progress.heard if progress else 1,
        started=progress.started if progress else None,
    )
    if response is None:
        # The same prompt differs from call to call only in its Gather URL (the call state).
        key = ("twiml", "prompt", ctx.business.name, ctx.business.message_types, step, preface)
        template = loaded.memo.get(key)
        if template is not None:
            return template.replace(_URL_TOKEN, _gather_url(ctx, state).replace("&", "&amp;"))
        loaded.memo[key] = _prompt_twiml(ctx, locale, preface, state, None, _URL_TOKEN)
    return _prompt_twiml(ctx, locale, preface, state, response)


def _prompt_twiml(
    ctx: CallContext,
    locale: str,
    preface: str | None,
    state: GatherState,
    response: VoiceResponse | None,
    url: str | None = None,
) -> str:
    script = ctx.scripts[locale].script
    response, gather, url = _gather(ctx, state, response, url)
    # Outside the Gather a <Say> is heard whole: Twilio stops only a Gather's nested audio at a
    # digit (https://www.twilio.com/docs/api/twiml/gather, "After the first digit is received the
    # audio will stop playing"), and a key pressed before a Gather begins is not gathered by it
    # (https://support.twilio.com/hc/en-us/articles/223180068-Troubleshooting-issues-with-Gather,
    # "Sometimes users begin to press keys before the <Gather> has actually begun"). So the
    # disclosure is always heard to its end before any key can count.
    if preface is not None:
        _say(response, script, ctx.render(locale, preface))
    hearing = ctx.hearing(locale, state.step)
    _say(response, script, hearing.disclosure)
    if hearing.instructions:
        _say(gather, script, hearing.instructions)
    return _finish(response, gather, url)


def _consent_step(ctx: CallContext) -> Step:
    return "subscribed" if ctx.opted_in else "consent"


def start_call(ctx: CallContext, recording_callback: str, started: int | None) -> str:
    """The first TwiML of a call: start recording, then the language menu or the prompt.

    `started` (ms since the epoch) travels in the call state, so the decision can say how
    long the caller took; START_PLACEHOLDER makes a TwiML to cache and `stamp_start` later.
    """
    response = VoiceResponse()
    start = response.start()
    start.recording(
        recording_status_callback=recording_callback,
        recording_status_callback_method="POST",
        recording_status_callback_event="completed absent",
        track="both",
    )
    first = GatherState(step="language", started=started)
    if len(ctx.business.locales) > 1:
        return _language_menu(ctx, first, preface=None, response=response)
    return _prompt(ctx, ctx.business.locales[0], 1, 0, None, response=response, progress=first)


def stamp_start(twiml: str, started: int, key: bytes, call_sid: str, business: str) -> str:
    """A first TwiML made with START_PLACEHOLDER and no CallSid, for a call answered at `started`
    (epoch ms): its start time, and the MAC of its Gather state for this call."""
    twiml = twiml.replace(f"t={START_PLACEHOLDER}", f"t={started}")
    begin = twiml.index("/twilio/gather?") + len("/twilio/gather?")
    query = twiml[begin : twiml.index(f"&amp;{MAC_PARAM}={UNSEALED}", begin)].replace("&amp;", "&")
    mac = state_mac(key, call_sid, business, query)
    return twiml.replace(f"{MAC_PARAM}={UNSEALED}", f"{MAC_PARAM}={mac}")


def _goodbye(ctx: CallContext, locale: str, preface: str) -> str:
    response = VoiceResponse()
    script = ctx.scripts[locale].script
    _say(response, script, ctx.render(locale, preface))
    _say(response, script, ctx.render(locale, "goodbye"))
    response.hangup()
    return str(response)


def _played(ctx: CallContext, state: GatherState, reason: PromptReason) -> Played:
    """What playing `state`'s prompt (after `reason`) is recorded as."""
    if state.step == "language" or state.locale is None:
        return Played("language_menu", reason, state.heard, None, None)
    return Played(state.step, reason, state.heard, state.locale, ctx.scripts[state.locale].version)


def _retry(ctx: CallContext, state: GatherState, preface: Literal["no_input", "invalid"]) -> Reply:
    """Reprompt after no input or an invalid key, or say goodbye after the last attempt."""
    locale = state.locale or ctx.business.locales[0]
    if state.attempt >= MAX_ATTEMPTS:
        version = ctx.scripts[state.locale].version if state.locale else None
        return Reply(
            _goodbye(ctx, locale, preface),
            played=Played("goodbye", preface, state.heard, state.locale, version),
        )
    again = state.next(attempt=state.attempt + 1)
    if state.step == "language":
        return Reply(_language_menu(ctx, again, preface), played=_played(ctx, again, preface))
    twiml = _prompt(ctx, locale, again.attempt, state.repeats, preface, step=state.step, progress=again)
    return Reply(twiml, played=_played(ctx, again, preface))


def _again(ctx: CallContext, state: GatherState, reason: PromptReason, repeats: int) -> Reply:
    """The same prompt once more: repeated on request, or in its new wording."""
    again = state.next(repeats=repeats)
    assert state.locale is not None
    twiml = _prompt(ctx, state.locale, state.attempt, repeats, None, step=state.step, progress=again)
    return Reply(twiml, played=_played(ctx, again, reason))


def continue_call(ctx: CallContext, state: GatherState, digits: str | None) -> Reply:
    """What happens after a Gather: the caller pressed `digits` (None: nothing)."""
    preface: Literal["no_input", "invalid"] = "no_input" if not digits else "invalid"
    if state.step == "language":
        if digits and digits.isdigit() and 1 <= int(digits) <= len(ctx.business.locales):
            locale = ctx.business.locales[int(digits) - 1]
            chosen = state.next(step=_consent_step(ctx), attempt=1, locale=locale)
            twiml = _prompt(ctx, locale, 1, 0, None, progress=chosen)
            return Reply(twiml, played=_played(ctx, chosen, "language_chosen"))
        return _retry(ctx, state, preface)
    assert state.locale is not None and state.version is not None
    loaded = ctx.scripts[state.locale]
    text = ctx.render(state.locale, state.step)
    if prompt_fingerprint(text) != state.prompt_sha:
        # The wording changed since the caller heard it: they must hear the new one first.
        return _again(ctx, state, "reworded", state.repeats)
    keys = loaded.script.keys
    if digits == keys.repeat and state.repeats < MAX_REPEATS:
        return _again(ctx, state, "repeat", state.repeats + 1)
    choices: dict[str, Action] = (
        {keys.opt_in: "opt_in", keys.decline: "declined"}
        if state.step == "consent"
        else {keys.opt_out: "opt_out"}
    )
    if digits in choices:
        heard = ctx.hearing(state.locale, state.step).record
        decide = Decide(
            choices[digits], digits, state.locale, loaded.version, heard, state.heard, state.started
        )
        return Reply("", decide)
    return _retry(ctx, state, preface)


_CONFIRMATION_PROMPT: dict[str, str] = {"opt_in": "confirmed", "declined": "declined", "opt_out": "opted_out"}


def confirmation(ctx: CallContext, locale: str, action: str) -> str:
    """Tell the caller what was recorded, then hang up."""
    loaded = ctx.scripts[locale]
    key = ("twiml", "confirmation", ctx.business.name, ctx.business.message_types, action)
    twiml = loaded.memo.get(key)
    if twiml is None:
        response = VoiceResponse()
        _say(response, loaded.script, ctx.render(locale, _CONFIRMATION_PROMPT[action]))
        response.hangup()
        twiml = loaded.memo[key] = str(response)
    return twiml


def rehearsal_confirmation(ctx: CallContext, locale: str, action: str) -> str:
    """What the caller would hear, said to be a rehearsal; nothing is recorded for it."""
    response = VoiceResponse()
    script = ctx.scripts[locale].script
    _say(response, script, language_for(locale).system.rehearsal)
    _say(response, script, ctx.render(locale, _CONFIRMATION_PROMPT[action]))
    response.hangup()
    return str(response)


def write_failed(ctx: CallContext, locale: str) -> str:
    """The choice could not be recorded: say so, never a false confirmation."""
    response = VoiceResponse()
    _say(response, ctx.scripts[locale].script, ctx.render(locale, "error"))
    response.hangup()
    return str(response)


def consent_prompt_twiml(ctx: CallContext, locale: str) -> str:
    """The TwiML of a first consent prompt, as a caller would get it (for previews)."""
    return _prompt(ctx, locale, attempt=1, repeats=0, preface=None)
