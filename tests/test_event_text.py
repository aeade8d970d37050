"""The receipt page's sentence for each kind of event, including records it does not know."""

from __future__ import annotations

from typing import Any

import pytest

from ivr.evidence.event_text import describe_event


@pytest.mark.parametrize(
    ("kind", "data", "text"),
    [
        (
            "decision",
            {"digits": "2", "action": "declined", "locale": "es-ES", "script_version": 3},
            "Pressed 2: declined (es-ES script version 3).",
        ),
        (
            "decision",
            {"digits": "1", "action": "opt_in", "locale": "en-US", "script_version": 1, "prompts_heard": 2,
             "seconds_to_decision": 14.2},
            "Pressed 1: opted in (en-US script version 1), 2 prompt(s) heard, 14.2 s after the answer.",
        ),
        (
            "prompt",
            {"prompt": "consent", "reason": "language_chosen", "prompts_heard": 2, "locale": "es-ES",
             "script_version": 1},
            "Played the consent prompt after the caller chose a language (es-ES script version 1);"
            " prompt 2 of the call.",
        ),
        (
            "prompt",
            {"prompt": "goodbye", "reason": "no_input", "prompts_heard": 3, "locale": None},
            "Played the goodbye after no key was pressed.",
        ),
        ("recording", {"recording_sid": "RE1", "status": "absent", "duration": None},
         "Recording RE1: absent."),
        ("call_status", {"status": "no-answer", "duration": 0}, "Call no-answer, 0 s."),
        ("call_status", {}, "Call ?."),
        ("erasure", {"subject": "x"}, "Erasure record."),
        ("decision", {"seconds_to_decision": "soon"},
         "Pressed ?: ? (? script version ?), ? after the answer."),
    ],
)  # fmt: skip
def test_each_event_reads_as_one_sentence(kind: str, data: dict[str, Any], text: str) -> None:
    assert describe_event(kind, data) == text
