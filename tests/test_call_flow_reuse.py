"""TwiML kept with a script version for reuse is byte for byte what a fresh build gives.

A script's first use of a prompt builds it directly (and keeps a copy with a stand-in URL);
later uses fill the stand-in: `warm` contexts take the second path, `fresh()` the first.
"""

from __future__ import annotations

import pytest

from consent_store import Business
from ivr.twilio.call_flow import (
    CallContext,
    GatherState,
    LoadedScript,
    confirmation,
    continue_call,
    prompt_fingerprint,
    start_call,
)
from voice_scripts import default_script_text, parse_script

BUSINESS = Business(
    "Acme & Sons <Parcels>", ("+15550001111",), ("delivery updates", "offers"), ("en-US", "es-ES")
)


def context(scripts: dict[str, LoadedScript], opted_in: bool = False) -> CallContext:
    return CallContext(BUSINESS, scripts, opted_in, "https://ivr.example.com")


def fresh() -> dict[str, LoadedScript]:
    return {loc: LoadedScript(parse_script(default_script_text(loc)), 1) for loc in BUSINESS.locales}


@pytest.mark.parametrize("digits", [None, "7", "*", "1"])
@pytest.mark.parametrize("attempt", [1, 2])
@pytest.mark.parametrize("opted_in", [False, True])
def test_a_reused_prompt_equals_a_fresh_build(digits: str | None, attempt: int, opted_in: bool) -> None:
    warm = fresh()
    step = "subscribed" if opted_in else "consent"
    text = context(warm, opted_in).render("es-ES", step)
    continue_call(context(warm, opted_in), GatherState(step, 1, 0, "es-ES", 1, "stale"), None)  # warms it
    for heard, started in ((2, 1_764_000_000_000), (5, 1_764_000_123_456), (3, None)):
        state = GatherState(step, attempt, 0, "es-ES", 1, prompt_fingerprint(text), heard, started)
        reused = continue_call(context(warm, opted_in), state, digits)
        built = continue_call(context(fresh(), opted_in), state, digits)
        assert reused == built
        assert reused.decide is not None or f"p={heard + 1}" in reused.twiml


def test_reused_first_twiml_and_confirmation_equal_fresh_builds() -> None:
    warm = fresh()
    for _ in range(2):
        assert start_call(
            context(warm), "https://ivr.example.com/twilio/recording", 1_764_000_000_000
        ) == start_call(context(fresh()), "https://ivr.example.com/twilio/recording", 1_764_000_000_000)
        for action in ("opt_in", "declined", "opt_out"):
            assert confirmation(context(warm), "en-US", action) == confirmation(
                context(fresh()), "en-US", action
            )
