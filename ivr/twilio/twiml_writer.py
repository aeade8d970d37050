"""TwiML written from a plan of what the caller hears, with the written text kept for reuse.

The call flow (ivr.twilio.call_flow) decides *what* is said: a `TwimlPlan` of <Say>s heard whole, a
<Gather> and the <Say>s inside it, a hang-up. This module writes it with Twilio's own library.
Within a call's life a plan repeats (every caller of a business hears the same prompt) and only
the Gather URL differs, so the TwiML of each plan is written once with a stand-in URL and each
reply puts its URL there: the cache is here, outside the flow, and is invisible in what is
returned (tests/test_call_flow_reuse.py holds a reused reply equal to a fresh one).
"""

from __future__ import annotations

import functools
from typing import NamedTuple
from xml.sax.saxutils import escape

from twilio.twiml.voice_response import Gather, VoiceResponse

GATHER_TIMEOUT_SECONDS = 7
# Stands for the Gather URL in a plan's TwiML kept for reuse; each reply puts its own URL there.
_URL_TOKEN = "https://gather.invalid/next"


# NamedTuples rather than frozen dataclasses: a plan is made on every reply and is the cache's
# key, and a tuple is built, hashed and compared in C (a frozen dataclass's __init__ and __hash__
# are Python code, about 10 µs a reply on the load benchmark's machine).
class Speech(NamedTuple):
    """One <Say>: the exact text, and the voice and language Twilio says it with."""

    text: str
    voice: str
    language: str


class TwimlPlan(NamedTuple):
    """What one reply does, in order: start recording, say `said` (heard whole), then gather a key
    while saying `gathered` (None: no Gather), or hang up."""

    said: tuple[Speech, ...] = ()
    gathered: tuple[Speech, ...] | None = None
    hangup: bool = False
    recording_callback: str | None = None


def _say(target: VoiceResponse | Gather, speech: Speech) -> None:
    target.say(speech.text, voice=speech.voice, language=speech.language)


def _write(plan: TwimlPlan, url: str) -> str:
    response = VoiceResponse()
    if plan.recording_callback is not None:
        start = response.start()
        start.recording(
            recording_status_callback=plan.recording_callback,
            recording_status_callback_method="POST",
            recording_status_callback_event="completed absent",
            track="both",
        )
    # Outside the Gather a <Say> is heard whole: Twilio stops only a Gather's nested audio at a
    # digit (https://www.twilio.com/docs/api/twiml/gather, "After the first digit is received the
    # audio will stop playing"), and a key pressed before a Gather begins is not gathered by it
    # (https://support.twilio.com/hc/en-us/articles/223180068-Troubleshooting-issues-with-Gather).
    for speech in plan.said:
        _say(response, speech)
    if plan.gathered is not None:
        gather = Gather(input="dtmf", num_digits=1, timeout=GATHER_TIMEOUT_SECONDS, action=url, method="POST")
        for speech in plan.gathered:
            _say(gather, speech)
        response.append(gather)
        # No key before the timeout: Twilio falls through to this Redirect without Digits.
        response.redirect(url, method="POST")
    if plan.hangup:
        response.hangup()
    return str(response)


@functools.lru_cache(maxsize=4096)
def _template(plan: TwimlPlan) -> str:
    return _write(plan, _URL_TOKEN)


def write_twiml(plan: TwimlPlan, url: str | None = None) -> str:
    """The TwiML of `plan`, its Gather (if any) posting to `url`."""
    template = _template(plan)
    if plan.gathered is None:
        return template
    if url is None:
        raise ValueError("a plan with a Gather needs its URL")
    return template.replace(_URL_TOKEN, escape(url, {'"': "&quot;"}))
