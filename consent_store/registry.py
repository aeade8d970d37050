"""What the consent log is about: businesses, script versions and drafts, message types,
erasures and opt-out webhooks (users and tokens: consent_store/access.py).

Every change a caller could hear (publishing, rolling back, changing message
types) is also appended to the hash chain as an audit event, in the same transaction.
Drafts are scratch: not heard, not chained. Shared by both backends (the SQL is
portable; JSON through the backend's `_json_text`).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

from consent_store.backend import StoreBackend
from consent_store.chain import text_sha256
from consent_store.events import (
    Business,
    Erasure,
    NewEvent,
    ScriptDraft,
    ScriptVersion,
    StoredEvent,
)
from consent_store.exceptions import (
    BusinessExists,
    ConflictingWrite,
    NumberTaken,
    ScriptNotFound,
    UnknownBusiness,
)
from consent_store.group_commit import SideWrite
from consent_store.writing import utc_now

# How Twilio addresses a WhatsApp sender; the numbers table keeps a business's senders so.
WHATSAPP_PREFIX = "whatsapp:"
_SCRIPT_COLUMNS = "business, locale, version, status, text, sha256, created_at, author"


def business_change(business: str, change: str, key: str, fields: dict[str, Any]) -> NewEvent:
    """A change to a business as its chained event; the key ends with the time, so making the
    same change again later is a record of its own."""
    return NewEvent(
        kind="business",
        idempotency_key=f"business:{business}:{key}:{utc_now()}",
        business=business,
        fields={"change": change, **fields},
    )


class RegistryMixin(StoreBackend):
    """Mixed into both stores, which provide the `StoreBackend` primitives."""

    async def _require_business(self, business: str) -> None:
        if not await self._fetchone("SELECT 1 FROM businesses WHERE name = ?", (business,)):
            raise UnknownBusiness(business)

    # -- settings, businesses and scripts -------------------------------------------

    async def get_setting(self, key: str) -> str | None:
        row = await self._fetchone("SELECT value FROM settings WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    async def setting_or_default(self, key: str, default: str) -> str:
        """Return the stored value, storing `default` first if there is none."""
        await self._side_writes(
            [("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, default))]
        )
        value = await self.get_setting(key)
        return default if value is None else value

    async def add_business(
        self,
        business: Business,
        scripts: dict[str, str],
        author: str,
    ) -> StoredEvent:
        """Create a business, its numbers and a published version 1 script per locale."""
        if await self._fetchone("SELECT 1 FROM businesses WHERE name = ?", (business.name,)):
            raise BusinessExists(business.name)
        senders = tuple(WHATSAPP_PREFIX + n for n in business.whatsapp_numbers)
        # A number is one business's, whether it takes calls or WhatsApp messages.
        for number in (*business.numbers, *business.whatsapp_numbers):
            for address in (number, WHATSAPP_PREFIX + number):
                row = await self._fetchone("SELECT business FROM numbers WHERE number = ?", (address,))
                if row:
                    raise NumberTaken(number, row[0])
        now = utc_now()
        writes: list[SideWrite] = [
            (
                "INSERT INTO businesses (name, message_types, locales, demo, created_at) VALUES (?,?,?,?,?)",
                (
                    business.name,
                    json.dumps(list(business.message_types)),
                    json.dumps(list(business.locales)),
                    int(business.demo),
                    now,
                ),
            )
        ]
        writes += [
            ("INSERT INTO numbers (number, business) VALUES (?, ?)", (n, business.name))
            for n in (*business.numbers, *senders)
        ]
        script_hashes = {}
        for locale, text in scripts.items():
            script_hashes[locale] = text_sha256(text)
            writes.append(
                (
                    "INSERT INTO scripts (business, locale, version, status, text, sha256,"
                    " created_at, author) VALUES (?, ?, 1, 'published', ?, ?, ?, ?)",
                    (business.name, locale, text, script_hashes[locale], now, author),
                )
            )
        event = NewEvent(
            kind="business",
            idempotency_key=f"business:{business.name}",
            business=business.name,
            fields={
                "change": "created",
                "numbers": list(business.numbers),
                **({"whatsapp_numbers": list(senders)} if senders else {}),
                "message_types": list(business.message_types),
                "locales": list(business.locales),
                "demo": business.demo,
                "scripts": {loc: {"version": 1, "sha256": h} for loc, h in script_hashes.items()},
                "author": author,
            },
        )
        return await self._append(event, writes)

    def _business_from_row(self, row: Any, numbers: Sequence[str]) -> Business:
        # A WhatsApp sender is kept among the numbers as Twilio addresses it, "whatsapp:+E164".
        return Business(
            name=row[0],
            message_types=tuple(json.loads(row[1])),
            locales=tuple(json.loads(row[2])),
            demo=bool(row[3]),
            numbers=tuple(n for n in numbers if not n.startswith(WHATSAPP_PREFIX)),
            whatsapp_numbers=tuple(
                n.removeprefix(WHATSAPP_PREFIX) for n in numbers if n.startswith(WHATSAPP_PREFIX)
            ),
        )

    async def get_business(self, name: str) -> Business:
        row = await self._fetchone(
            "SELECT name, message_types, locales, demo FROM businesses WHERE name = ?", (name,)
        )
        if row is None:
            raise UnknownBusiness(name)
        numbers = await self._fetchall(
            "SELECT number FROM numbers WHERE business = ? ORDER BY number", (name,)
        )
        return self._business_from_row(row, [n[0] for n in numbers])

    async def business_for_number(self, number: str) -> Business | None:
        row = await self._fetchone("SELECT business FROM numbers WHERE number = ?", (number,))
        return None if row is None else await self.get_business(row[0])

    async def registry_changed_at(self) -> int:
        """The record number of the latest business or script change (0: none yet).

        One indexed read: what a process holding businesses and scripts in memory asks
        to learn whether another process changed them.
        """
        row = await self._fetchone(
            "SELECT max(seq) FROM events WHERE call_sid IS NULL AND kind IN ('business', 'script')"
        )
        return int(row[0] or 0) if row else 0

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers and takes a durable write now.

        The write is a real commit through the writer (a full disk or a read-only file shows
        here), and the writer's queue refuses it when the writer is not running."""
        await self._fetchone("SELECT 1")
        await self._side_writes(
            [
                (
                    "INSERT INTO settings (key, value) VALUES ('health_probe', ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (utc_now(),),
                )
            ]
        )

    async def list_businesses(self) -> list[Business]:
        rows = await self._fetchall("SELECT name FROM businesses ORDER BY name")
        return [await self.get_business(r[0]) for r in rows]

    async def script_version(self, business: str, locale: str, version: int | None = None) -> ScriptVersion:
        """The given version, or the published one when version is None."""
        sql = (
            "SELECT business, locale, version, status, text, sha256, created_at, author"
            " FROM scripts WHERE business = ? AND locale = ?"
        )
        params: list[Any] = [business, locale]
        if version is None:
            sql += " AND status = 'published' ORDER BY version DESC LIMIT 1"
        else:
            sql += " AND version = ?"
            params.append(version)
        row = await self._fetchone(sql, params)
        if row is None:
            raise ScriptNotFound(business, locale, version)
        return ScriptVersion(*row)

    # -- script versions and drafts ---------------------------------------------

    async def script_versions(self, business: str, locale: str) -> list[ScriptVersion]:
        """Every version of a script, newest first."""
        rows = await self._fetchall(
            f"SELECT {_SCRIPT_COLUMNS} FROM scripts WHERE business = ? AND locale = ? ORDER BY version DESC",
            (business, locale),
        )
        return [ScriptVersion(*row) for row in rows]

    async def script_draft(self, business: str, locale: str) -> ScriptDraft | None:
        row = await self._fetchone(
            "SELECT business, locale, text, sha256, updated_at, author FROM script_drafts"
            " WHERE business = ? AND locale = ?",
            (business, locale),
        )
        return None if row is None else ScriptDraft(*row)

    async def save_draft(self, business: str, locale: str, text: str, author: str) -> ScriptDraft:
        """Keep a manager's unpublished edit (one draft per business and locale)."""
        await self._require_business(business)
        draft = ScriptDraft(business, locale, text, text_sha256(text), utc_now(), author)
        await self._side_writes(
            [
                (
                    "INSERT INTO script_drafts (business, locale, text, sha256, updated_at, author)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (business, locale) DO UPDATE SET"
                    " text = excluded.text, sha256 = excluded.sha256, updated_at = excluded.updated_at,"
                    " author = excluded.author",
                    (draft.business, draft.locale, draft.text, draft.sha256, draft.updated_at, draft.author),
                )
            ]
        )
        return draft

    async def discard_draft(self, business: str, locale: str) -> None:
        await self._side_writes(
            [("DELETE FROM script_drafts WHERE business = ? AND locale = ?", (business, locale))]
        )

    async def publish_script(
        self, business: str, locale: str, text: str, author: str, note: str = "published"
    ) -> ScriptVersion:
        """Make `text` the version callers hear, as the next version number; chain the change.

        The caller (ivr) lints before calling this; the store only keeps history straight.
        """
        await self._require_business(business)
        for _attempt in range(3):
            row = await self._fetchone(
                "SELECT COALESCE(MAX(version), 0) FROM scripts WHERE business = ? AND locale = ?",
                (business, locale),
            )
            version, digest, now = int(row[0]) + 1, text_sha256(text), utc_now()
            writes: list[SideWrite] = [
                (
                    "UPDATE scripts SET status = 'superseded' WHERE business = ? AND locale = ?"
                    " AND status = 'published'",
                    (business, locale),
                ),
                (
                    f"INSERT INTO scripts ({_SCRIPT_COLUMNS}) VALUES (?, ?, ?, 'published', ?, ?, ?, ?)",
                    (business, locale, version, text, digest, now, author),
                ),
                ("DELETE FROM script_drafts WHERE business = ? AND locale = ?", (business, locale)),
            ]
            event = NewEvent(
                kind="script",
                idempotency_key=f"script:{business}:{locale}:{version}",
                business=business,
                fields={
                    "locale": locale,
                    "version": version,
                    "sha256": digest,
                    "author": author,
                    "change": note,
                },
            )
            try:
                await self._append(event, writes)
            except ConflictingWrite:
                continue  # someone published meanwhile: take the next number
            return ScriptVersion(business, locale, version, "published", text, digest, now, author)
        raise ConflictingWrite(f"could not publish {business} {locale}: too many concurrent publishes")

    async def set_message_types(self, business: str, message_types: Sequence[str], author: str) -> None:
        """Change what a business's callers are asked to agree to; chained, since it changes the wording."""
        await self._require_business(business)
        types = list(message_types)
        event = business_change(
            business, "message_types", "message_types", {"message_types": types, "author": author}
        )
        await self._append(
            event, [("UPDATE businesses SET message_types = ? WHERE name = ?", (json.dumps(types), business))]
        )

    # -- erasure --------------------------------------------------------------

    async def forget_phone(self, phone: str, author: str, reason: str) -> Erasure | None:
        """Erase a caller's phone number (and its salt) so no read or export can show it again.

        The chain keeps only a salted commitment to the phone, so it still verifies; without the
        salt the commitment cannot be linked back to the number. The erasure itself is chained.
        None if the store holds nothing for this phone.
        """
        row = await self._fetchone("SELECT subject FROM subjects WHERE phone = ?", (phone,))
        if row is None:
            return await self._forget_message_recipient(phone, author, reason)
        subject = str(row[0])
        counted = await self._fetchone(
            "SELECT count(*) FROM events WHERE subject = ? AND kind = 'decision'", (subject,)
        )
        recordings = await self._fetchall(
            f"SELECT DISTINCT {self._json_text('r.body', 'data', 'recording_sid')} FROM events r"
            " WHERE r.kind = 'recording' AND r.call_sid IN"
            " (SELECT call_sid FROM events WHERE subject = ? AND call_sid IS NOT NULL)",
            (subject,),
        )
        sids = tuple(sorted(str(r[0]) for r in recordings if r[0]))
        event = NewEvent(
            kind="erasure",
            idempotency_key=f"erasure:{subject}",
            fields={
                "subject_erased": subject,
                "decisions": int(counted[0]),
                "recording_sids": list(sids),
                "author": author,
                "reason": reason,
            },
        )
        erase = [
            ("DELETE FROM subjects WHERE subject = ?", (subject,)),
            # Message status callbacks (outside the chain) name the number in plain: gone too.
            ("DELETE FROM message_statuses WHERE to_number = ?", (phone,)),
            ("DELETE FROM messages WHERE to_number = ?", (phone,)),
        ]
        stored = await self._append(event, erase)
        await self._checkpoint()  # old copies of the page may still sit in the write-ahead log
        return Erasure(subject, int(counted[0]), sids, stored.hash)

    async def _forget_message_recipient(self, phone: str, author: str, reason: str) -> Erasure | None:
        """A number that never decided anything but was sent messages: its status callbacks
        (outside the chain) are erased, and the erasure is chained like any other (without the
        number, nor a subject: it never had one). None if no message was sent to it."""
        found = await self._fetchone("SELECT count(*) FROM message_statuses WHERE to_number = ?", (phone,))
        statuses = int(found[0]) if found is not None else 0
        if statuses == 0:
            return None
        event = NewEvent(
            kind="erasure",
            idempotency_key=f"erasure:messages:{secrets.token_hex(16)}",  # nothing that hints at the number
            fields={
                "subject_erased": None,
                "decisions": 0,
                "message_statuses": statuses,
                "recording_sids": [],
                "author": author,
                "reason": reason,
            },
        )
        erase = [
            ("DELETE FROM message_statuses WHERE to_number = ?", (phone,)),
            ("DELETE FROM messages WHERE to_number = ?", (phone,)),
        ]
        stored = await self._append(event, erase)
        await self._checkpoint()
        return Erasure("", 0, (), stored.hash, statuses)
