"""One plain sentence per chained event of a call, for the auditor's receipt page.

Pure: reads an event's kind and `data` and never fails on a value it does not expect
(an older or unknown record is described by its kind alone).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_PROMPTS = {
    "language_menu": "the language menu",
    "consent": "the consent prompt",
    "subscribed": "the opt-out prompt",
    "goodbye": "the goodbye",
}
_REASONS = {
    "language_chosen": "after the caller chose a language",
    "no_input": "after no key was pressed",
    "invalid": "after a key that is not an option",
    "repeat": "again, as the caller asked",
    "reworded": "again, in its newly published wording",
}
_ACTIONS = {"opt_in": "opted in", "declined": "declined", "opt_out": "opted out"}


def _seconds(value: Any) -> str:
    return f"{value:g} s" if isinstance(value, int | float) and not isinstance(value, bool) else "?"


def describe_event(kind: str, data: Mapping[str, Any]) -> str:
    """What happened, in words, e.g. 'Pressed 1: opted in (en-US script version 2).'"""
    if kind == "decision":
        action = data.get("action", "?")
        text = (
            f"Pressed {data.get('digits', '?')}: {_ACTIONS.get(str(action), action)}"
            f" ({data.get('locale', '?')} script version {data.get('script_version', '?')})"
        )
        if "prompts_heard" in data:
            text += f", {data['prompts_heard']} prompt(s) heard"
        if "seconds_to_decision" in data:
            text += f", {_seconds(data['seconds_to_decision'])} after the answer"
        return text + "."
    if kind == "prompt":
        prompt = _PROMPTS.get(str(data.get("prompt")), str(data.get("prompt")))
        reason = _REASONS.get(str(data.get("reason")), str(data.get("reason")))
        locale = data.get("locale")
        where = f" ({locale} script version {data.get('script_version')})" if locale else ""
        heard = f"; prompt {data['prompts_heard']} of the call" if data.get("prompt") != "goodbye" else ""
        return f"Played {prompt} {reason}{where}{heard}."
    if kind == "recording":
        duration = f", {_seconds(data['duration'])}" if data.get("duration") is not None else ""
        code = f", ErrorCode {data['error_code']}" if data.get("error_code") else ""
        found = ", found by asking Twilio" if data.get("found_by") == "reconciliation" else ""
        sid, status = data.get("recording_sid", "?"), data.get("status", "?")
        return f"Recording {sid}: {status}{duration}{code}{found}."
    if kind == "call_status":
        duration = f", {_seconds(data['duration'])}" if data.get("duration") is not None else ""
        return f"Call {data.get('status', '?')}{duration}."
    if kind == "recording_check":
        outcome = data.get("outcome")
        said = "no recording of this call" if outcome == "none" else f"the recording {outcome}"
        code = f" (ErrorCode {data['error_code']})" if data.get("error_code") else ""
        return f"Asked Twilio's Recordings list: {said}{code}."
    if kind == "recording_deleted":
        where = "from the archive" if data.get("where") == "archive" else "at Twilio"
        why = {"erasure": "an erasure request", "purge": "the retention period", "archived": "archived"}
        return (
            f"Recording {data.get('recording_sid', '?')} deleted {where}"
            f" ({why.get(str(data.get('reason')), str(data.get('reason')))}); its SHA-256 stays in the chain."
        )
    return f"{kind.replace('_', ' ').capitalize()} record."
