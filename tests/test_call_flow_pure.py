"""The call flow is a function of (context, call state, keys, now): the same inputs give the same
Reply, its TwiML and what to record, and the time of the key only changes the decision's seconds."""

from __future__ import annotations

import pytest

from consent_store import Business
from ivr.twilio.call_flow import (
    CallContext,
    Decide,
    GatherState,
    LoadedScript,
    Played,
    continue_call,
    prompt_fingerprint,
)
from voice_scripts import default_script_text, parse_script

BUSINESS = Business("Acme Parcels", ("+15550001111",), ("delivery updates",), ("en-US", "es-ES"))
ANSWERED = 1_764_000_000_000


def context() -> CallContext:
    scripts = {loc: LoadedScript(parse_script(default_script_text(loc)), 1) for loc in BUSINESS.locales}
    return CallContext(BUSINESS, scripts, False, "https://ivr.example.com", "CA" + "ab" * 16, b"k" * 32)


def consent_state() -> GatherState:
    text = context().render("es-ES", "consent")
    return GatherState("consent", 1, 0, "es-ES", 1, prompt_fingerprint(text), 2, ANSWERED)


@pytest.mark.parametrize(
    ("now", "seconds"),
    [(ANSWERED + 12_345, 12.3), (ANSWERED + 12_360, 12.4), (ANSWERED - 5_000, 0.0), (None, None)],
)
def test_a_decision_says_how_long_after_the_answer_its_key_came(
    now: int | None, seconds: float | None
) -> None:
    reply = continue_call(context(), consent_state(), "1", now)
    assert reply.twiml == "" and isinstance(reply.record, Decide) and reply.decide is reply.record
    assert (reply.record.action, reply.record.seconds_to_decision) == ("opt_in", seconds)
    assert reply.played is None


@pytest.mark.parametrize("digits", [None, "7", "*", "2", "9"])
def test_the_same_inputs_give_the_same_reply_whatever_came_before(digits: str | None) -> None:
    ctx = context()
    first = continue_call(ctx, consent_state(), digits, ANSWERED + 9_000)
    for _ in range(3):
        continue_call(ctx, consent_state(), "7", ANSWERED)  # other calls through the same context
    assert continue_call(ctx, consent_state(), digits, ANSWERED + 9_000) == first
    assert continue_call(context(), consent_state(), digits, ANSWERED + 9_000) == first
    if first.decide is None:
        assert isinstance(first.record, Played) and first.played is first.record and first.twiml


def test_a_prompt_played_is_the_record_of_a_retry() -> None:
    reply = continue_call(context(), consent_state(), "7", ANSWERED)
    assert reply.record == Played("consent", "invalid", 3, "es-ES", 1)
    assert "/twilio/gather?" in reply.twiml and "n=2" in reply.twiml
