"""The opt-in call as a pure function: (context, call state, keys pressed, now) -> Reply.

A Reply is the TwiML to answer and what to record: a `Decide` (a decision, recorded before the
caller hears its confirmation, so a caller never hears a confirmation of something that was not
written) or a `Played` (a prompt played). No I/O and no caches here: the context brings the
script versions (their rendered texts kept in ivr.twilio.script_texts), the call state travels in the
signed Gather URL (ivr.twilio.call_state), and TwiML is written from a plan of what is said
(ivr.twilio.twiml_writer, which keeps what it wrote for reuse). The webhook parses, calls the flow,
persists and responds.

Twilio stops a <Gather>'s nested audio at the first digit, so the consent and subscribed
prompts say their disclosure outside the Gather, where nothing cuts it, and only their key
instructions inside (ivr.twilio.disclosure); a decision records both, as played before its key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlencode

from consent_store import Action, Business
from consent_store.events import PromptName, PromptReason
from ivr.twilio.call_state import (
    CLOCK_SKEW_MS,
    MAC_PARAM,
    MAX_ATTEMPTS,
    MAX_CALL_MS,
    MAX_PROMPTS_HEARD,
    MAX_REPEATS,
    START_PLACEHOLDER,
    STEPS,
    UNSEALED,
    GatherState,
    Step,
    check_issued,
    prompt_fingerprint,
    stamp_start,
    state_mac,
)
from ivr.twilio.disclosure import Hearing
from ivr.twilio.script_texts import LoadedScript, hearing_of, prompt_speech, prompt_text
from ivr.twilio.twiml_writer import GATHER_TIMEOUT_SECONDS, Speech, TwimlPlan, write_twiml
from voice_scripts import language_for

__all__ = [
    "CLOCK_SKEW_MS",
    "GATHER_TIMEOUT_SECONDS",
    "MAC_PARAM",
    "MAX_ATTEMPTS",
    "MAX_CALL_MS",
    "MAX_PROMPTS_HEARD",
    "MAX_REPEATS",
    "START_PLACEHOLDER",
    "STEPS",
    "SYSTEM_LOCALE",
    "UNSEALED",
    "CallContext",
    "Decide",
    "GatherState",
    "LoadedScript",
    "Played",
    "Reply",
    "Step",
    "check_issued",
    "confirmation",
    "consent_prompt_twiml",
    "continue_call",
    "prompt_fingerprint",
    "rehearsal_confirmation",
    "stamp_start",
    "start_call",
    "state_mac",
    "system_reply",
    "unknown_number_reply",
    "write_failed",
]

# The language of the service's own words when no business locale is known (an unknown number,
# an error before a locale was chosen). What it says in each language is in voice_scripts/locales/.
SYSTEM_LOCALE = "en-US"
SystemText = Literal["withheld", "error"]


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
        return prompt_text(self.scripts[locale], self.business, prompt, menu_key)

    def hearing(self, locale: str, step: Step) -> Hearing:
        """The `step` prompt (consent or subscribed) as disclosure and key instructions."""
        return hearing_of(self.scripts[locale], self.business, step)

    def speech(self, locale: str, text: str) -> Speech:
        """`text` said in the voice of the locale's script."""
        script = self.scripts[locale].script
        return Speech(text, script.voice, script.language)

    def said(self, locale: str, prompt: str, menu_key: str = "") -> Speech:
        """The prompt said in the voice of the locale's script."""
        return prompt_speech(self.scripts[locale], self.business, prompt, menu_key)


@dataclass(frozen=True)
class Decide:
    """A decision to record before the caller hears its confirmation."""

    action: Action
    digits: str
    locale: str
    script_version: int
    spoken_text: str  # the disclosure heard whole, a line break, the key instructions (ivr.twilio.disclosure)
    prompts_heard: int
    started: int | None  # ms since the epoch, when the call was answered
    seconds_to_decision: float | None = None  # from the answer to the key, when `now` was given


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
    """The TwiML to answer, and what to record (a decision before any confirmation, or a prompt)."""

    twiml: str
    record: Decide | Played | None = None

    @property
    def decide(self) -> Decide | None:
        return self.record if isinstance(self.record, Decide) else None

    @property
    def played(self) -> Played | None:
        return self.record if isinstance(self.record, Played) else None


def _system_speech(text: str, locale: str) -> Speech:
    """`text` in the system voice of the locale's language (voice_scripts/locales/)."""
    system = language_for(locale).system
    return Speech(text, system.voice, system.say_language)


def unknown_number_reply() -> str:
    said = _system_speech(language_for(SYSTEM_LOCALE).system.unknown_number, SYSTEM_LOCALE)
    return write_twiml(TwimlPlan(said=(said,), hangup=True))


def system_reply(key: SystemText, locale: str = SYSTEM_LOCALE) -> str:
    """A fixed message and hang-up, for when no script can be used. UnknownLanguage (a ScriptError)
    when the locale's language has no file: never another language's words."""
    system = language_for(locale).system
    said = _system_speech(system.withheld if key == "withheld" else system.error, locale)
    return write_twiml(TwimlPlan(said=(said,), hangup=True))


def _gather_url(ctx: CallContext, state: GatherState) -> str:
    query = urlencode(state.to_query())
    mac = UNSEALED
    if ctx.call_sid is not None:
        mac = state_mac(ctx.state_key, ctx.call_sid, ctx.business.name, query)
    return f"{ctx.base_url}/twilio/gather?{query}&{MAC_PARAM}={mac}"


def _language_menu(
    ctx: CallContext, state: GatherState, preface: str | None, recording: str | None = None
) -> str:
    locales = ctx.business.locales
    said = [ctx.said(locales[0], preface)] if preface is not None else []
    said += [ctx.said(locale, "language_menu", str(index)) for index, locale in enumerate(locales, start=1)]
    plan = TwimlPlan(gathered=tuple(said), recording_callback=recording)
    return write_twiml(plan, _gather_url(ctx, state))


def _prompt(
    ctx: CallContext,
    locale: str,
    attempt: int,
    repeats: int,
    preface: str | None,
    step: Step | None = None,
    recording: str | None = None,
    progress: GatherState | None = None,
) -> str:
    """A consent (or opt-out) prompt; `progress` is the state it is played in (heard, started)."""
    step = step or _consent_step(ctx)
    state = GatherState(
        step=step,
        attempt=attempt,
        repeats=repeats,
        locale=locale,
        version=ctx.scripts[locale].version,
        prompt_sha=prompt_fingerprint(ctx.render(locale, step)),
        heard=progress.heard if progress else 1,
        started=progress.started if progress else None,
    )
    # The disclosure is said outside the Gather, so it is heard to its end before any key counts.
    hearing = ctx.hearing(locale, step)
    said = ([ctx.said(locale, preface)] if preface is not None else []) + [
        ctx.speech(locale, hearing.disclosure)
    ]
    gathered = (ctx.speech(locale, hearing.instructions),) if hearing.instructions else ()
    plan = TwimlPlan(said=tuple(said), gathered=gathered, recording_callback=recording)
    return write_twiml(plan, _gather_url(ctx, state))


def _consent_step(ctx: CallContext) -> Step:
    return "subscribed" if ctx.opted_in else "consent"


def start_call(ctx: CallContext, recording_callback: str, started: int | None) -> str:
    """The first TwiML of a call: start recording, then the language menu or the prompt.

    `started` (ms since the epoch) travels in the call state, so the decision can say how
    long the caller took; START_PLACEHOLDER makes a TwiML to cache and `stamp_start` later.
    """
    first = GatherState(step="language", started=started)
    if len(ctx.business.locales) > 1:
        return _language_menu(ctx, first, preface=None, recording=recording_callback)
    return _prompt(ctx, ctx.business.locales[0], 1, 0, None, recording=recording_callback, progress=first)


def _goodbye(ctx: CallContext, locale: str, preface: str) -> str:
    said = (ctx.said(locale, preface), ctx.said(locale, "goodbye"))
    return write_twiml(TwimlPlan(said=said, hangup=True))


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
            Played("goodbye", preface, state.heard, state.locale, version),
        )
    again = state.next(attempt=state.attempt + 1)
    if state.step == "language":
        return Reply(_language_menu(ctx, again, preface), _played(ctx, again, preface))
    twiml = _prompt(ctx, locale, again.attempt, state.repeats, preface, step=state.step, progress=again)
    return Reply(twiml, _played(ctx, again, preface))


def _again(ctx: CallContext, state: GatherState, reason: PromptReason, repeats: int) -> Reply:
    """The same prompt once more: repeated on request, or in its new wording."""
    again = state.next(repeats=repeats)
    assert state.locale is not None
    twiml = _prompt(ctx, state.locale, state.attempt, repeats, None, step=state.step, progress=again)
    return Reply(twiml, _played(ctx, again, reason))


def continue_call(ctx: CallContext, state: GatherState, digits: str | None, now: int | None = None) -> Reply:
    """What happens after a Gather: the caller pressed `digits` (None: nothing) at `now` (ms since the
    epoch; a decision then says how many seconds after the answer its key came)."""
    preface: Literal["no_input", "invalid"] = "no_input" if not digits else "invalid"
    if state.step == "language":
        if digits and digits.isdigit() and 1 <= int(digits) <= len(ctx.business.locales):
            locale = ctx.business.locales[int(digits) - 1]
            chosen = state.next(step=_consent_step(ctx), attempt=1, locale=locale)
            twiml = _prompt(ctx, locale, 1, 0, None, progress=chosen)
            return Reply(twiml, _played(ctx, chosen, "language_chosen"))
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
        seconds = None
        if now is not None and state.started is not None:
            seconds = max(0.0, round((now - state.started) / 1000, 1))
        decide = Decide(
            choices[digits], digits, state.locale, loaded.version, heard, state.heard, state.started, seconds
        )
        return Reply("", decide)
    return _retry(ctx, state, preface)


_CONFIRMATION_PROMPT: dict[str, str] = {"opt_in": "confirmed", "declined": "declined", "opt_out": "opted_out"}


def confirmation(ctx: CallContext, locale: str, action: str) -> str:
    """Tell the caller what was recorded, then hang up."""
    return write_twiml(TwimlPlan(said=(ctx.said(locale, _CONFIRMATION_PROMPT[action]),), hangup=True))


def rehearsal_confirmation(ctx: CallContext, locale: str, action: str) -> str:
    """What the caller would hear, said to be a rehearsal; nothing is recorded for it."""
    note = ctx.speech(locale, language_for(locale).system.rehearsal)
    said = (note, ctx.said(locale, _CONFIRMATION_PROMPT[action]))
    return write_twiml(TwimlPlan(said=said, hangup=True))


def write_failed(ctx: CallContext, locale: str) -> str:
    """The choice could not be recorded: say so, never a false confirmation."""
    return write_twiml(TwimlPlan(said=(ctx.said(locale, "error"),), hangup=True))


def consent_prompt_twiml(ctx: CallContext, locale: str) -> str:
    """The TwiML of a first consent prompt, as a caller would get it (for previews)."""
    return _prompt(ctx, locale, attempt=1, repeats=0, preface=None)
