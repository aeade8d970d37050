"""Phone numbers typed by a person (CLI options, page fields) turned into E.164.

People write `+1 (415) 555-0123` or, with a default region, `(415) 555-0123`; this is the
one place such text becomes `+14155550123`, through Google's libphonenumber (`phonenumbers`).
It must never be used on what Twilio sends: a webhook's `From` and `To` are E.164 already,
and consent_store.phone.is_e164 checks them strictly (it also refuses the placeholders of
a withheld caller ID, which no typed number may become either).
"""

from __future__ import annotations

import re

import phonenumbers

from consent_store.phone import is_e164
from ivr.exceptions import MAX_TYPED_LENGTH as MAX_TYPED_LENGTH  # longer: refused without being parsed
from ivr.exceptions import NotAPhoneNumber

__all__ = ["check_region", "normalise_typed_phone"]

# What a person types: ASCII digits, an optional leading '+', spaces and the usual
# separators. Letters (vanity numbers, 'ext', 'tel:'), other scripts' digits and control
# characters are refused before libphonenumber sees them: it would quietly turn 'FLOWERS'
# into digits, and a consent record must name the number the person meant.
_TYPED = re.compile(r"\+?[0-9 ().\-/]*[0-9][0-9 ().\-/]*")


def check_region(raw: str) -> str:
    """An ISO 3166 alpha-2 region libphonenumber knows (e.g. 'US'), upper-cased; ValueError if not."""
    region = raw.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{raw[:20]!r} is not a country code libphonenumber knows (ISO 3166, e.g. US, GB)")
    return region


def normalise_typed_phone(text: str, region: str | None) -> str:
    """`text` as E.164 ('+1 555 000 2222' -> '+15550002222'); NotAPhoneNumber if it is not one.

    Without `region` the number must start with '+'; with one (e.g. 'US') a national
    number such as '(415) 555-0123' is read as that country's.
    """
    typed = text.strip()
    without_country = (
        "write it with its country code (E.164), e.g. +14155550123, or set IVR_DEFAULT_REGION"
        if region is None
        else f"write it with its country code (E.164), e.g. +14155550123, or as a number of {region}"
    )
    if len(typed) > MAX_TYPED_LENGTH:
        raise NotAPhoneNumber(text, f"it is longer than {MAX_TYPED_LENGTH} characters")
    if _TYPED.fullmatch(typed) is None:
        raise NotAPhoneNumber(
            text, "use the digits 0-9, a leading +, and spaces, dashes, dots or brackets between them"
        )
    try:
        parsed = phonenumbers.parse(typed, region)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type != phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            raise NotAPhoneNumber(text, "it is too short or too long") from None
        if typed.startswith("+"):
            raise NotAPhoneNumber(text, "it starts with no country's code (+1, +44, ...)") from None
        raise NotAPhoneNumber(text, without_country) from None
    # is_possible_number (the length is right for the country), not is_valid_number: the
    # fictional 555-01xx numbers of tests and the demo business (+15550100100) are in no
    # numbering plan, and is_valid_number would refuse them; a mistyped digit count is
    # still caught. The number only has to be one a person could have meant.
    # IS_POSSIBLE_LOCAL_ONLY (7 digits in the US, dialled without an area code) is refused too.
    if phonenumbers.is_possible_number_with_reason(parsed) != phonenumbers.ValidationResult.IS_POSSIBLE:
        raise NotAPhoneNumber(text, f"it has the wrong number of digits for +{parsed.country_code}")
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if not is_e164(e164):  # a withheld caller's placeholder, or outside E.164's bounds
        raise NotAPhoneNumber(text, "no caller can have it")
    return e164
