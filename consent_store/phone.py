"""E.164 phone numbers: the only form in which a phone enters the store.

A caller who withholds their number still reaches us with a `From` that may look like
a phone: Twilio spells the withheld caller ID on a telephone keypad and puts a
placeholder in its place (Twilio Help Center, "Why am I getting calls from these strange
numbers?", https://help.twilio.com/articles/223179988, as cited in somleng/somleng#1820 and
bmlt-enabled/yap#125 where callers met +266696687; the changelog of 16 Nov 2022,
https://www.twilio.com/en-us/changelog/upcoming-changes-to-withheld-caller-ids-behavior-for-dial-calls,
says Programmable Voice "translates the alpha string into digits" and that the words
themselves may be passed on instead). Those placeholders pass the E.164 syntax check, so
`is_e164` refuses them by name: no consent record is ever kept for a withheld caller.
"""

from __future__ import annotations

import re

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")

# What Twilio puts in `From` for a withheld caller ID: each word, and the number it spells
# on a keypad (ANONYMOUS = 266696687, ...). Compared case-insensitively; empty counts too.
WITHHELD_CALLER_IDS: frozenset[str] = frozenset(
    {
        "+266696687",  # ANONYMOUS
        "+7378742833",  # RESTRICTED
        "+2562533",  # BLOCKED
        "+8656696",  # UNKNOWN
        "+86282452253",  # UNAVAILABLE
        "anonymous",
        "restricted",
        "blocked",
        "unknown",
        "unavailable",
        "private",
        "",
    }
)


def is_withheld(value: str | None) -> bool:
    """True for a withheld caller ID: missing, empty, or one of Twilio's placeholders."""
    return value is None or value.strip().lower() in WITHHELD_CALLER_IDS


def is_e164_format(value: str) -> bool:
    """True for '+' followed by 7 to 15 digits, the first not 0 (syntax only: placeholders pass)."""
    return _E164.fullmatch(value) is not None


def is_callable_subject(value: str) -> bool:
    """True for a caller a consent record can be kept for: E.164 and not a withheld placeholder."""
    return is_e164_format(value) and not is_withheld(value)


# The name callers are checked with (webhooks, forms, the API): it refuses placeholders too.
# Code that must read a stored value's syntax alone (the CSV export) uses is_e164_format.
is_e164 = is_callable_subject


def masked(phone: str) -> str:
    """A phone safe for logs: all but the last three digits hidden."""
    return "*" * max(len(phone) - 3, 0) + phone[-3:] if phone else "-"
