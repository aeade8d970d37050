"""Changing a business after it was created: numbers added or removed, a locale added.

Each change is appended to the hash chain as a 'business' audit event naming its author, in the
same transaction as the change, as `set_message_types` is (consent_store/registry.py). Shared by
both backends (portable SQL).
"""

from __future__ import annotations

import json

from consent_store.chain import text_sha256
from consent_store.events import NewEvent
from consent_store.exceptions import BusinessChangeRefused, NumberTaken
from consent_store.registry import WHATSAPP_PREFIX, RegistryMixin, business_change
from consent_store.writing import utc_now

__all__ = ["BusinessChangesMixin"]


class BusinessChangesMixin(RegistryMixin):
    async def add_number(self, business: str, number: str, author: str) -> None:
        """Route calls to `number` to this business from now on; NumberTaken if any business has it."""
        await self._require_business(business)
        # A number is one business's, whether it takes calls or WhatsApp messages ("whatsapp:+E164").
        plain = number.removeprefix(WHATSAPP_PREFIX)
        for address in (plain, WHATSAPP_PREFIX + plain):
            row = await self._fetchone("SELECT business FROM numbers WHERE number = ?", (address,))
            if row and (address == number or row[0] != business):
                raise NumberTaken(plain, row[0])
        event = business_change(
            business, "number_added", f"number_added:{number}", {"number": number, "author": author}
        )
        await self._append(
            event, [("INSERT INTO numbers (number, business) VALUES (?, ?)", (number, business))]
        )

    async def remove_number(self, business: str, number: str, author: str) -> None:
        """Stop routing `number` to this business; a business keeps at least one number for calls."""
        await self._require_business(business)
        rows = await self._fetchall("SELECT number FROM numbers WHERE business = ?", (business,))
        numbers = {r[0] for r in rows}
        if number not in numbers:
            raise BusinessChangeRefused(business, f"{number} is not one of its numbers")
        calls = {n for n in numbers if not n.startswith(WHATSAPP_PREFIX)}
        if calls == {number}:
            raise BusinessChangeRefused(
                business, f"{number} is its only number: add another before removing this one"
            )
        event = business_change(
            business, "number_removed", f"number_removed:{number}", {"number": number, "author": author}
        )
        await self._append(
            event, [("DELETE FROM numbers WHERE number = ? AND business = ?", (number, business))]
        )

    async def add_locale(self, business: str, locale: str, text: str, author: str) -> None:
        """Add a locale with `text` published as its version 1 (the caller lints it first)."""
        row = await self._fetchone("SELECT locales FROM businesses WHERE name = ?", (business,))
        if row is None:
            await self._require_business(business)  # raises UnknownBusiness
        locales = list(json.loads(row[0]))
        if locale in locales:
            raise BusinessChangeRefused(business, f"it already speaks {locale}")
        locales.append(locale)
        digest, now = text_sha256(text), utc_now()
        event = NewEvent(
            kind="business",
            idempotency_key=f"business:{business}:locale_added:{locale}",
            business=business,
            fields={
                "change": "locale_added",
                "locale": locale,
                "locales": locales,
                "scripts": {locale: {"version": 1, "sha256": digest}},
                "author": author,
            },
        )
        await self._append(
            event,
            [
                ("UPDATE businesses SET locales = ? WHERE name = ?", (json.dumps(locales), business)),
                (
                    "INSERT INTO scripts (business, locale, version, status, text, sha256,"
                    " created_at, author) VALUES (?, ?, 1, 'published', ?, ?, ?, ?)",
                    (business, locale, text, digest, now, author),
                ),
            ],
        )
