"""A realistic stream of consent decisions, shared by the benchmarks and the store filler.

Every call has its own CallSid; about 30% of calls come from a phone that has
called before; a business offers 1 to 3 message types in es-ES and/or en-US;
the spoken text is the ~300-character consent prompt the caller heard. Like the live
service, each decision says how many prompts the caller heard (the language menu
counts; 15% asked to hear it again or stayed silent once) and how many seconds after
the answer the key was pressed, so no two decisions' data are alike.
Deterministic for a given seed.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass

from consent_store import Action, Business, ConsentDecision, SQLiteStore, text_sha256

BUSINESSES: tuple[Business, ...] = (
    Business("Acme Parcels", ("+15550001111",), ("delivery updates",), ("en-US",)),
    Business(
        "Farmacia Sol",
        ("+34910000222",),
        ("recordatorios de recetas", "ofertas"),
        ("es-ES", "en-US"),
    ),
    Business("Clínica Dental Norte", ("+34930000333",), ("recordatorios de citas",), ("es-ES",)),
    Business(
        "Bright Bank",
        ("+15550004444", "+15550004445"),
        ("payment alerts", "security notices", "offers"),
        ("en-US", "es-ES"),
    ),
    Business("Taller Ruiz", ("+34950000555",), ("avisos de reparación", "presupuestos"), ("es-ES",)),
    Business("City Gym", ("+15550006666",), ("class reminders", "offers", "news"), ("en-US", "es-ES")),
    Business("Librería Índigo", ("+34960000777",), ("novedades",), ("es-ES", "en-US")),
    Business("Harbor Vet", ("+15550008888",), ("appointment reminders", "vaccination reminders"), ("en-US",)),
)

_CONSENT = {
    "en-US": (
        "Hello, thank you for calling {business}. We would like to send you {types} over WhatsApp, "
        "at most four messages a month. You can stop them at any time: call this number again and "
        "press nine. To agree to receive WhatsApp messages from {business}, press one. "
        "If you do not agree, press two. To hear this again, press star."
    ),
    "es-ES": (
        "Hola, gracias por llamar a {business}. Nos gustaría enviarle por WhatsApp {types}, como "
        "máximo cuatro mensajes al mes. Puede darse de baja cuando quiera: vuelva a llamar y pulse "
        "nueve. Para aceptar los mensajes de WhatsApp de {business}, pulse uno. Si no acepta, "
        "pulse dos. Para volver a escucharlo, pulse asterisco."
    ),
}
_AND = {"en-US": "and", "es-ES": "y"}
# Share of each action, and the key the caller pressed for it.
_ACTIONS: tuple[tuple[Action, str, float], ...] = (
    ("opt_in", "1", 0.65),
    ("declined", "2", 0.25),
    ("opt_out", "9", 0.10),
)
_THRESHOLDS = tuple(itertools.accumulate(share for _, _, share in _ACTIONS))
# Country code and leading digit of new phones, then how many more digits.
_COUNTRY = {"en-US": ("+12", 9), "es-ES": ("+346", 8)}


def spoken_list(items: Sequence[str], locale: str) -> str:
    if len(items) == 1:
        return items[0]
    return f"{', '.join(items[:-1])} {_AND[locale]} {items[-1]}"


def spoken_text(business: Business, locale: str) -> str:
    """The consent prompt as spoken to a caller of this business in this locale."""
    return _CONSENT[locale].format(business=business.name, types=spoken_list(business.message_types, locale))


def script_template(locale: str) -> str:
    """The (unrendered) version 1 script stored for a business."""
    return _CONSENT[locale]


async def add_businesses(store: SQLiteStore, businesses: Sequence[Business] = BUSINESSES) -> None:
    """Create the businesses through the store API, as `ivr business add` would."""
    for business in businesses:
        scripts = {locale: script_template(locale) for locale in business.locales}
        await store.add_business(business, scripts, author="bench")


@dataclass(frozen=True)
class Call:
    """One caller's decision, before it becomes a ConsentDecision."""

    call_sid: str
    phone: str
    business: Business
    locale: str
    action: Action
    digits: str
    prompts_heard: int = 1
    seconds_to_decision: float = 20.0


class Workload:
    """Draws calls: distinct CallSids, ~`repeat_share` of them from phones seen before."""

    def __init__(
        self, seed: int = 0, businesses: Sequence[Business] = BUSINESSES, repeat_share: float = 0.3
    ) -> None:
        if not businesses:
            raise ValueError("a workload needs at least one business")
        self._rng = random.Random(seed)
        self._businesses = tuple(businesses)
        self._repeat_share = repeat_share
        self._texts = {
            (b.name, locale): spoken_text(b, locale) for b in self._businesses for locale in b.locales
        }
        self._sha = {key: text_sha256(text) for key, text in self._texts.items()}
        self._sid_prefix = f"{self._rng.getrandbits(64):016x}"
        self._phone_offset = self._rng.randrange(10**6)
        self._seen: list[tuple[str, str]] = []  # (phone, locale) of earlier callers
        self._calls = 0
        self._new_phones = 0

    def _new_phone(self, locale: str) -> str:
        """A phone never drawn before: n * 7654321 is a bijection modulo 10**k."""
        prefix, digits = _COUNTRY[locale]
        self._new_phones += 1
        number = (self._new_phones * 7_654_321 + self._phone_offset) % 10**digits
        return f"{prefix}{number:0{digits}d}"

    def call(self) -> Call:
        rng = self._rng
        self._calls += 1
        call_sid = f"CA{self._sid_prefix}{self._calls:016x}"
        business = self._businesses[rng.randrange(len(self._businesses))]
        if self._seen and rng.random() < self._repeat_share:
            phone, locale = self._seen[rng.randrange(len(self._seen))]
            if locale not in business.locales:
                locale = business.locales[0]
        else:
            locale = business.locales[rng.randrange(len(business.locales))]
            phone = self._new_phone(locale)
            self._seen.append((phone, locale))
        index = min(bisect.bisect_right(_THRESHOLDS, rng.random()), len(_ACTIONS) - 1)
        action, digits, _ = _ACTIONS[index]
        heard = (2 if len(business.locales) > 1 else 1) + (rng.random() < 0.15) + (rng.random() < 0.05)
        seconds = round(rng.uniform(8.0, 25.0) * heard, 1)
        return Call(call_sid, phone, business, locale, action, digits, heard, seconds)

    def text(self, business: Business, locale: str) -> tuple[str, str]:
        """The spoken text for this business and locale, and its SHA-256."""
        return self._texts[(business.name, locale)], self._sha[(business.name, locale)]

    def decision(self, call: Call | None = None) -> ConsentDecision:
        call = call or self.call()
        text, sha = self.text(call.business, call.locale)
        return ConsentDecision(
            call_sid=call.call_sid,
            phone=call.phone,
            business=call.business.name,
            action=call.action,
            message_types=call.business.message_types,
            digits=call.digits,
            locale=call.locale,
            script_version=1,
            script_sha256=sha,
            spoken_text=text,
            prompts_heard=call.prompts_heard,
            seconds_to_decision=call.seconds_to_decision,
        )

    def decisions(self, n: int) -> list[ConsentDecision]:
        return [self.decision() for _ in range(n)]


def opt_in_decision(business: Business, call_sid: str, phone: str, spoken: str) -> ConsentDecision:
    """The same decision every time but for the call: key 1, opting in to every message type of
    `business` after hearing `spoken` (its en-US script, version 1)."""
    return ConsentDecision(
        call_sid=call_sid,
        phone=phone,
        business=business.name,
        action="opt_in",
        message_types=business.message_types,
        digits="1",
        locale="en-US",
        script_version=1,
        script_sha256=text_sha256(spoken),
        spoken_text=spoken,
    )
