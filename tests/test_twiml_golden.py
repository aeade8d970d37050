"""The TwiML of whole calls, in both shipped languages, is byte for byte what it was.

Recorded through the Twilio emulator at commit e6dd279 (before the per-language tables moved
into voice_scripts/locales/) into tests/golden/twiml.json; a refactoring of the call flow or of
the language data must leave every answer the same. Per-call values are masked: the start time
(t=), the state's MAC (z=). To record anew after a change meant to alter what callers hear:
`IVR_TEST_WRITE_GOLDEN=1 pytest tests/test_twiml_golden.py` and review the diff.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import httpx

from consent_store import Business
from ivr.twilio.call_flow import (
    CallContext,
    LoadedScript,
    rehearsal_confirmation,
    system_reply,
    unknown_number_reply,
)
from tests.conftest import ACME, ACME_NUMBER, BILINGUAL_NUMBER, Service
from voice_scripts import default_script_text, parse_script

GOLDEN = Path(__file__).parent / "golden" / "twiml.json"
_MASKS = ((re.compile(r"\bt=\d+"), "t=T"), (re.compile(r"\bz=(?:[0-9a-f]{32}|unsealed)"), "z=MAC"))

# (name, to, from, keys); callers differ so each call's standing is known.
CALLS: tuple[tuple[str, str, str, list[str]], ...] = (
    ("en opt in", ACME_NUMBER, "+14155550101", ["1"]),
    ("en decline", ACME_NUMBER, "+14155550102", ["2"]),
    ("en silence to goodbye", ACME_NUMBER, "+14155550103", ["-", "-", "-"]),
    ("en invalid, repeat, opt in", ACME_NUMBER, "+14155550104", ["5", "*", "1"]),
    ("en opted in caller opts out", ACME_NUMBER, "+14155550101", ["7", "9"]),
    ("menu: es opt in", BILINGUAL_NUMBER, "+14155550105", ["1", "1"]),
    ("menu: en decline", BILINGUAL_NUMBER, "+14155550106", ["2", "2"]),
    ("menu: invalid, es decline", BILINGUAL_NUMBER, "+14155550107", ["5", "1", "2"]),
    ("menu: es silence to goodbye", BILINGUAL_NUMBER, "+14155550108", ["1", "-", "-", "-"]),
    ("menu: es opted in caller repeats, opts out", BILINGUAL_NUMBER, "+14155550105", ["1", "*", "9"]),
    ("withheld caller, en", ACME_NUMBER, "anonymous", []),
    ("withheld caller, es first", BILINGUAL_NUMBER, "+266696687", []),
    ("unknown number", "+15550009999", "+14155550109", []),
)


def _masked(text: str) -> str:
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


async def _calls(service: Service) -> dict[str, list[str]]:
    bodies: list[str] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        if response.headers.get("content-type", "").startswith(("text/xml", "application/xml")):
            bodies.append(_masked(response.text))

    service.client.event_hooks = {"request": [], "response": [keep]}
    heard: dict[str, list[str]] = {}
    for name, to, from_, keys in CALLS:
        bodies.clear()
        await service.twilio.call(to, from_, keys)
        heard[name] = list(bodies)
    return heard


def _direct() -> dict[str, list[str]]:
    """The replies made without a script, or besides one (a rehearsal's note)."""
    replies = {"unknown number reply": [unknown_number_reply()]}
    for key in ("withheld", "error"):
        replies[f"system {key}"] = [system_reply(key)] + [
            system_reply(key, locale) for locale in ("en-US", "en-GB", "es-ES", "es-MX")
        ]
    business = ACME
    for locale in ("en-US", "es-ES"):
        ctx = CallContext(
            Business(business, ("+15550001111",), ("delivery updates",), (locale,)),
            {locale: LoadedScript(parse_script(default_script_text(locale)), 1)},
            False,
            "https://ivr.example.com",
        )
        replies[f"rehearsal {locale}"] = [
            rehearsal_confirmation(ctx, locale, action) for action in ("opt_in", "declined", "opt_out")
        ]
    return replies


async def test_every_call_answers_the_same_twiml_as_before(service: Service) -> None:
    now = {"calls": await _calls(service), "direct": _direct()}
    if os.environ.get("IVR_TEST_WRITE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(now, indent=1, ensure_ascii=False) + "\n", "utf-8")
    before = json.loads(GOLDEN.read_text("utf-8"))
    assert now["direct"] == before["direct"]
    for name, bodies in before["calls"].items():
        assert now["calls"][name] == bodies, name
    assert now == before
