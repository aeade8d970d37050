"""Creating businesses with their default scripts, checked by the policy linter first."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence

from consent_store import Business, ConsentStore
from consent_store.exceptions import BusinessExists, NumberTaken, UnknownBusiness
from consent_store.phone import is_e164
from ivr.exceptions import InvalidBusiness
from ivr.pages.script_form import with_type_names
from voice_scripts import (
    ScriptError,
    UnsupportedLocale,
    default_script_text,
    errors,
    lint_script,
    parse_script,
)

MAX_FREQUENCY_CHARACTERS = 200
# How Twilio addresses a WhatsApp sender, and how the store keeps one among a business's numbers.
WHATSAPP_ADDRESS = "whatsapp:"
MAX_NAME_CHARACTERS = 100
_FREQUENCY_LINE = re.compile(r"^frequency = .*$", re.MULTILINE)


def with_frequency(text: str, frequency: str | None) -> str:
    """The script text with its promised frequency replaced (None: as it is)."""
    if frequency is None:
        return text
    frequency = frequency.strip()
    if not frequency:
        raise InvalidBusiness("say how often messages come (e.g. 'no more than four messages a month')")
    if len(frequency) > MAX_FREQUENCY_CHARACTERS or any(c < " " for c in frequency):
        raise InvalidBusiness(
            f"the frequency must be one line of at most {MAX_FREQUENCY_CHARACTERS} characters"
        )
    if not _FREQUENCY_LINE.search(text):
        raise InvalidBusiness(
            "this script has no 'frequency = ...' line to change; edit it in the script editor"
        )
    # A JSON string is a TOML basic string (the same escapes); a lambda keeps backslashes literal.
    line = "frequency = " + json.dumps(frequency, ensure_ascii=False)
    return _FREQUENCY_LINE.sub(lambda _: line, text, count=1)


def validate_business(
    name: str, numbers: Sequence[str], message_types: Sequence[str], locales: Sequence[str]
) -> Business:
    name = name.strip()
    if not name:
        raise InvalidBusiness("the business name must not be empty")
    if len(name) > MAX_NAME_CHARACTERS:
        raise InvalidBusiness(f"the business name is longer than {MAX_NAME_CHARACTERS} characters")
    if any(c in "<>" or c < " " for c in name):
        # Callers hear the name and pages show it: no markup, no control characters.
        raise InvalidBusiness("the business name must not contain '<', '>' or control characters")
    if not numbers:
        raise InvalidBusiness("give at least one --number")
    for number in numbers:
        if not is_e164(number):
            raise InvalidBusiness(f"number {number!r} is not in E.164 form (e.g. +14155550123)")
    if len(set(numbers)) != len(numbers):
        raise InvalidBusiness("the same number is given twice")
    types = tuple(t.strip() for t in message_types)
    if not types or not all(types):
        raise InvalidBusiness("give at least one non-empty --message-type (e.g. 'delivery updates')")
    for message_type in types:
        if ";" in message_type:
            # CSV exports join message types with '; ', so one must not contain it.
            raise InvalidBusiness(
                f"message type {message_type!r} must not contain ';'; give each type "
                "with its own --message-type"
            )
    if len(set(locales)) != len(locales):
        raise InvalidBusiness("the same locale is given twice")
    return Business(
        name=name, numbers=tuple(numbers), message_types=types, locales=tuple(locales) or ("en-US",)
    )


def validate_whatsapp_numbers(numbers: Sequence[str]) -> tuple[str, ...]:
    """WhatsApp sender numbers as stored: E.164, each once (InvalidBusiness otherwise)."""
    for number in numbers:
        if not is_e164(number):
            raise InvalidBusiness(f"WhatsApp number {number!r} is not in E.164 form (e.g. +14155550123)")
    if len(set(numbers)) != len(numbers):
        raise InvalidBusiness("the same WhatsApp number is given twice")
    return tuple(numbers)


async def add_business(
    store: ConsentStore,
    name: str,
    numbers: Sequence[str],
    message_types: Sequence[str],
    locales: Sequence[str] = ("en-US",),
    author: str = "cli",
    demo: bool = False,
    frequency: str | None = None,
    whatsapp_numbers: Sequence[str] = (),
    spoken_names: Mapping[str, Mapping[str, str]] | None = None,
) -> Business:
    """Create a business with the default script of each locale, published as version 1
    (promising `frequency` when given, else the default script's), and its WhatsApp senders;
    `spoken_names` gives message types their names in a locale ({"es-ES": {type: name}})."""
    business = validate_business(name, numbers, message_types, locales)
    if demo:
        business = Business(business.name, business.numbers, business.message_types, business.locales, True)
    if whatsapp_numbers:
        business = dataclasses.replace(business, whatsapp_numbers=validate_whatsapp_numbers(whatsapp_numbers))
    scripts = {}
    for locale in business.locales:
        scripts[locale] = default_script_checked(
            business, locale, frequency, (spoken_names or {}).get(locale)
        )
    await store.add_business(business, scripts, author=author)
    return business


def default_script_checked(
    business: Business, locale: str, frequency: str | None = None, names: Mapping[str, str] | None = None
) -> str:
    """The default script of `locale` for this business (with its message types' spoken `names`),
    after the policy check (InvalidBusiness)."""
    try:
        text = with_frequency(default_script_text(locale), frequency)
    except UnsupportedLocale as exc:
        raise InvalidBusiness(
            f"there is no default script for {locale!r}; choose {', '.join(exc.supported)}"
        ) from exc
    except ScriptError as exc:  # a language file that cannot be read or misses an entry: named
        raise InvalidBusiness(str(exc)) from exc
    if names:
        text = with_type_names(text, names)
    problems = errors(lint_script(parse_script(text), business.name, business.message_types))
    if problems:
        raise InvalidBusiness(f"the default {locale} script fails the policy check: {problems[0]}")
    return text


async def add_locale(store: ConsentStore, business: Business, locale: str, author: str) -> None:
    """Give a business another locale, its default script published as version 1, checked first."""
    await store.add_locale(business.name, locale, default_script_checked(business, locale), author)


DEMO_NAME = "Demo Bakery"
# 555-0100 to 555-0199 are reserved for fiction: no real caller can have this number.
DEMO_NUMBER = "+15550100100"
DEMO_MESSAGE_TYPES = ("order updates", "delivery reminders")
# So that a Spanish caller hears every word in Spanish (the caller-language rule).
DEMO_SPOKEN_NAMES = {
    "es-ES": {"order updates": "avisos de pedidos", "delivery reminders": "recordatorios de entrega"}
}


async def ensure_demo_business(store: ConsentStore) -> Business | None:
    """On an empty database, create the clearly labelled demo business; None if there were businesses.

    Several `ivr serve` processes may start at once on one empty PostgreSQL database and all
    find it empty. One creates the demo business; each of the others either gets that same
    creation back from the log (its idempotency key) or finds the name or number taken, and
    starts with the one demo business (None)."""
    if await store.list_businesses():
        return None
    try:
        return await add_business(
            store,
            DEMO_NAME,
            [DEMO_NUMBER],
            DEMO_MESSAGE_TYPES,
            ("en-US", "es-ES"),
            author="ivr serve (first run)",
            demo=True,
            spoken_names=DEMO_SPOKEN_NAMES,
        )
    except (BusinessExists, NumberTaken):
        try:
            created_meanwhile = (await store.get_business(DEMO_NAME)).demo
        except UnknownBusiness:
            created_meanwhile = False
        if not created_meanwhile:
            raise
        return None


async def set_whatsapp_numbers(
    store: ConsentStore, name: str, numbers: Sequence[str], author: str
) -> Business:
    """Make `numbers` (E.164) the business's WhatsApp senders, each change chained with its author.

    A number that is another business's, for calls or WhatsApp, is refused (NumberTaken) before
    anything changes. The business's own call numbers take messages without being listed."""
    business = await store.get_business(name)
    wanted = validate_whatsapp_numbers(numbers)
    added = [n for n in wanted if n not in business.whatsapp_numbers]
    removed = [n for n in business.whatsapp_numbers if n not in wanted]
    for number in added:
        for address in (number, WHATSAPP_ADDRESS + number):
            holder = await store.business_for_number(address)
            if holder is not None and holder.name != business.name:
                raise NumberTaken(number, holder.name)
    for number in added:
        await store.add_number(business.name, WHATSAPP_ADDRESS + number, author)
    for number in removed:
        await store.remove_number(business.name, WHATSAPP_ADDRESS + number, author)
    return await store.get_business(business.name)
