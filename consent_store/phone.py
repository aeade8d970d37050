"""E.164 phone numbers: the only form in which a phone enters the store."""

from __future__ import annotations

import re

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


def is_e164(value: str) -> bool:
    """True for '+' followed by 7 to 15 digits, the first not 0."""
    return _E164.fullmatch(value) is not None


def masked(phone: str) -> str:
    """A phone safe for logs: all but the last three digits hidden."""
    return "*" * max(len(phone) - 3, 0) + phone[-3:] if phone else "-"
