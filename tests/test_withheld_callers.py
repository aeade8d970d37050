"""Withheld callers: Twilio's placeholder numbers and words never get a consent record.

Twilio spells a withheld caller ID on a keypad and sends that as `From` (see the sources
cited in consent_store/phone.py); the placeholders are valid E.164, so they are refused
by name, at the webhook and again in the store.
"""

from __future__ import annotations

import sqlite3
import xml.etree.ElementTree as ET

import pytest

from consent_store import ConsentDecision, text_sha256
from consent_store.exceptions import WithheldCaller
from consent_store.phone import (
    WITHHELD_CALLER_IDS,
    is_callable_subject,
    is_e164,
    is_e164_format,
    is_withheld,
)
from ivr.twilio.call_flow import system_reply
from tests.conftest import ACME, ACME_NUMBER, BILINGUAL_NUMBER, CALLER, Service

PLACEHOLDERS = ["+266696687", "+7378742833", "+2562533", "+8656696", "+86282452253"]
KEYPAD = {
    letter: str(digit)
    for digit, letters in enumerate(["", "", "ABC", "DEF", "GHI", "JKL", "MNO", "PQRS", "TUV", "WXYZ"])
    for letter in letters
}


def keypad(word: str) -> str:
    return "+" + "".join(KEYPAD[letter] for letter in word)


def test_placeholders_are_the_withheld_words_spelt_on_a_keypad() -> None:
    words = ["ANONYMOUS", "RESTRICTED", "BLOCKED", "UNKNOWN", "UNAVAILABLE"]
    assert [keypad(word) for word in words] == PLACEHOLDERS
    assert {keypad(word) for word in words} | {w.lower() for w in words} <= WITHHELD_CALLER_IDS


@pytest.mark.parametrize("value", [*PLACEHOLDERS, "anonymous", "Anonymous", "RESTRICTED", "private", "", " "])
def test_withheld_values_are_no_callable_subject(value: str) -> None:
    assert is_withheld(value)
    assert not is_callable_subject(value) and not is_e164(value)


def test_placeholders_pass_the_syntax_check_alone_and_real_numbers_pass_both() -> None:
    assert all(is_e164_format(p) for p in PLACEHOLDERS)
    assert is_callable_subject(CALLER) and is_e164(CALLER) and not is_withheld(CALLER)


def said(twiml: str) -> str:
    return " ".join((say.text or "").strip() for say in ET.fromstring(twiml).iter("Say"))


def events(service: Service) -> list[tuple[str, str | None]]:
    with sqlite3.connect(service.db_url.removeprefix("sqlite:///")) as conn:
        return list(conn.execute("SELECT kind, subject FROM events ORDER BY seq"))


def subjects(service: Service) -> int:
    with sqlite3.connect(service.db_url.removeprefix("sqlite:///")) as conn:
        return int(conn.execute("SELECT count(*) FROM subjects").fetchone()[0])


@pytest.mark.parametrize("caller", [*PLACEHOLDERS, "anonymous", ""])
@pytest.mark.parametrize(("number", "locale"), [(ACME_NUMBER, "en-US"), (BILINGUAL_NUMBER, "es-ES")])
async def test_withheld_caller_is_told_no_choice_can_be_recorded_and_nothing_is_kept(
    service: Service, caller: str, number: str, locale: str
) -> None:
    before = events(service)
    call = await service.twilio.call(number, caller, ["1", "1"])
    assert call.transcript == said(system_reply("withheld", locale))
    assert call.spoken[0].language == locale
    assert call.ended_by == "hangup" and call.pressed == [] and call.recording_sid is None
    # The only trace is the call's end from Twilio's status callback: no phone, no decision.
    added = events(service)[len(before) :]
    assert added == [("call_status", None)]
    assert subjects(service) == 0


@pytest.mark.parametrize("phone", [*PLACEHOLDERS, "Anonymous", ""])
async def test_the_store_refuses_a_decision_for_a_withheld_caller(service: Service, phone: str) -> None:
    before = events(service)
    decision = ConsentDecision(
        "CA" + "0" * 32,
        phone,
        ACME,
        "opt_in",
        ("delivery updates",),
        "1",
        "en-US",
        1,
        text_sha256("hi"),
        "hi",
    )
    with pytest.raises(WithheldCaller, match="withheld caller ID"):
        await service.store.record_decision(decision)
    assert events(service) == before and subjects(service) == 0
    assert (await service.store.verify()).intact
