"""How a caller got to a decision: prompts played after the first, and time to decide.

Every prompt played after a key press or a silence is a chained `prompt` record; the
decision says how many prompts the caller heard and how many seconds after the answer
the key was pressed. Rehearsals record none of it.
"""

from __future__ import annotations

import json
import time

import pytest

from consent_store import ExportFilter
from ivr.exceptions import InvalidCallState
from ivr.twilio.call_flow import START_PLACEHOLDER, GatherState
from ivr.twilio.webhooks import REHEARSAL_PARAM
from tests.conftest import ACME_NUMBER, BILINGUAL_NUMBER, CALLER, Service


async def _records(service: Service, call_sid: str, kind: str) -> list[dict[str, object]]:
    rows = await service.store.events_for_call(call_sid)
    return [json.loads(r.body)["data"] for r in rows if r.kind == kind]


async def test_decision_after_silence_and_repeat_records_each_prompt_and_the_count(service: Service) -> None:
    before = time.time()
    call = await service.twilio.call(ACME_NUMBER, CALLER, ["-", "*", "1"])
    assert "Hemos" not in call.transcript and call.ended_by == "hangup"
    prompts = await _records(service, call.call_sid, "prompt")
    assert [(p["prompt"], p["reason"], p["prompts_heard"], p["locale"]) for p in prompts] == [
        ("consent", "no_input", 2, "en-US"),
        ("consent", "repeat", 3, "en-US"),
    ]
    assert all(p["script_version"] == 1 for p in prompts)
    [decision] = await _records(service, call.call_sid, "decision")
    assert decision["action"] == "opt_in" and decision["prompts_heard"] == 3
    seconds = decision["seconds_to_decision"]
    assert isinstance(seconds, float) and 0.0 <= seconds <= time.time() - before + 0.1


async def test_language_choice_is_recorded_before_any_decision(service: Service) -> None:
    call = await service.twilio.call(BILINGUAL_NUMBER, CALLER, ["1", "-", "-", "-"])
    prompts = await _records(service, call.call_sid, "prompt")
    assert [(p["prompt"], p["reason"], p["prompts_heard"], p["locale"]) for p in prompts] == [
        ("consent", "language_chosen", 2, "es-ES"),
        ("consent", "no_input", 3, "es-ES"),
        ("consent", "no_input", 4, "es-ES"),
        ("goodbye", "no_input", 4, "es-ES"),
    ]
    assert await _records(service, call.call_sid, "decision") == []


async def test_three_wrong_keys_at_the_language_menu_end_with_a_recorded_goodbye(service: Service) -> None:
    call = await service.twilio.call(BILINGUAL_NUMBER, CALLER, ["7", "8", "9"])
    prompts = await _records(service, call.call_sid, "prompt")
    assert [(p["prompt"], p["reason"], p["prompts_heard"], p["locale"]) for p in prompts] == [
        ("language_menu", "invalid", 2, None),
        ("language_menu", "invalid", 3, None),
        ("goodbye", "invalid", 3, None),
    ]


async def test_a_retried_gather_post_records_its_prompt_once(service: Service) -> None:
    call = await service.twilio.call(ACME_NUMBER, CALLER, ["-", "2"])
    [gather_url, *_] = [url for url, _status in call.responses if "/twilio/gather" in url]
    params = service.twilio.call_params(call.call_sid, ACME_NUMBER, CALLER)
    again = await service.twilio.post(gather_url, params)
    assert again.status_code == 200
    prompts = await _records(service, call.call_sid, "prompt")
    assert [(p["reason"], p["prompts_heard"]) for p in prompts] == [("no_input", 2)]


async def test_a_rehearsal_records_no_prompts(service: Service) -> None:
    call = await service.twilio.call(
        ACME_NUMBER, CALLER, ["-", "1"], extra_params={REHEARSAL_PARAM: "published"}
    )
    assert "rehearsal" in call.transcript
    kinds = {r.kind for r in await service.store.events_for_call(call.call_sid)}
    assert kinds <= {"recording", "call_status"}  # the emulator still sends Twilio's callbacks
    assert [r async for r in service.store.export_decisions(ExportFilter())] == []


async def test_first_twiml_is_cached_but_each_call_gets_its_own_start_time(service: Service) -> None:
    first = await service.twilio.call(ACME_NUMBER, CALLER, ["-"], status_callback=False)
    second = await service.twilio.call(ACME_NUMBER, "+15550009999", ["-"], status_callback=False)
    starts = []
    for call in (first, second):
        url = next(url for url, _ in call.responses if "/twilio/gather" in url)
        state = GatherState.from_query(dict(p.split("=", 1) for p in url.split("?", 1)[1].split("&")))
        starts.append(state.started)
    assert all(s is not None and s != START_PLACEHOLDER and abs(s / 1000 - time.time()) < 60 for s in starts)


@pytest.mark.parametrize(
    "query",
    [
        {"step": "language", "p": "0"},
        {"step": "language", "p": "1001"},
        {"step": "language", "p": "x"},
        {"step": "language", "t": "-5"},
        {"step": "language", "t": "99999999999999"},
    ],
)
def test_out_of_range_progress_in_the_url_is_refused(query: dict[str, str]) -> None:
    with pytest.raises(InvalidCallState):
        GatherState.from_query(query)


def test_a_call_state_from_before_progress_was_tracked_still_reads() -> None:
    state = GatherState.from_query({"step": "language", "n": "2", "r": "0"})
    assert (state.heard, state.started) == (1, None)
