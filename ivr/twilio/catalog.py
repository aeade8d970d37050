"""Businesses, numbers and scripts kept in memory for the webhooks, so a call costs one
store read (the caller's standing) instead of five.

Checked every RELOAD_SECONDS by a background task (`watch`, one indexed read of the
latest business or script change), so no request waits for it, and reloaded only when
something changed; at once after a change made in this process. A script published
from another process reaches calls within that time. Without the task (commands), a
look-up older than RELOAD_SECONDS checks first.
A call always names the script version it heard, and versions never change, so
those are cached for good.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from consent_store import Business, ConsentStore, StoreError
from ivr.twilio.call_flow import LoadedScript
from voice_scripts import ScriptError, parse_script

LOG = logging.getLogger(__name__)

RELOAD_SECONDS = 1.0


@dataclass
class Snapshot:
    generation: int
    loaded_at: float
    changed_at: int = 0  # the store's registry_changed_at() when loaded
    by_number: dict[str, Business] = field(default_factory=dict)
    by_whatsapp_sender: dict[str, Business] = field(default_factory=dict)  # E.164, for messages only
    published: dict[tuple[str, str], LoadedScript] = field(default_factory=dict)

    def message_sender(self, channel: str, number: str) -> Business | None:
        """The business sending from `number` on `channel` ("whatsapp" or "sms"): on WhatsApp,
        the one with that sender number (--whatsapp-number) first, then the one with that number."""
        found = self.by_whatsapp_sender.get(number) if channel == "whatsapp" else None
        return found or self.by_number.get(number)


class Catalog:
    def __init__(self, store: ConsentStore, reload_seconds: float = RELOAD_SECONDS) -> None:
        self.store = store
        self.reload_seconds = reload_seconds
        self._snapshot: Snapshot | None = None
        self._versions: dict[tuple[str, str, int], LoadedScript] = {}
        self._lock = asyncio.Lock()
        self._generation = 0
        self._watching = False
        # Rendered TwiML that depends only on catalog data, per generation.
        self.twiml: dict[tuple[object, ...], str] = {}

    def invalidate(self) -> None:
        self._snapshot = None

    async def watch(self) -> None:
        """Check for changes every `reload_seconds` until cancelled, so requests never wait for it."""
        self._watching = True
        try:
            while True:
                await asyncio.sleep(self.reload_seconds)
                try:
                    await self.refresh()
                except (StoreError, ScriptError) as exc:  # keep serving what was loaded
                    LOG.warning("could not reload businesses and scripts: %s", exc)
                except Exception:  # a watcher that died would leave every request reading the store
                    LOG.exception("could not reload businesses and scripts")
        finally:
            self._watching = False

    async def refresh(self) -> None:
        """Check the store now; reload if a business or script changed since the last load."""
        async with self._lock:
            await self._refresh_locked(self._snapshot)

    def current_now(self) -> Snapshot | None:
        """What `current` would return without waiting, or None if it would have to check the
        store first (no watcher and the snapshot is older than `reload_seconds`, or none)."""
        snapshot = self._snapshot
        if snapshot is not None and (
            self._watching or time.monotonic() - snapshot.loaded_at < self.reload_seconds
        ):
            return snapshot
        return None

    async def current(self) -> Snapshot:
        """The businesses and scripts as loaded, checked first if they may be out of date."""
        fresh = self.current_now()
        if fresh is not None:
            return fresh
        snapshot = self._snapshot
        async with self._lock:
            # Whoever waited here while another request checked or reloaded takes its result.
            current = self._snapshot
            if current is not None and (
                current is not snapshot or time.monotonic() - current.loaded_at < self.reload_seconds
            ):
                return current
            return await self._refresh_locked(current)

    async def _refresh_locked(self, snapshot: Snapshot | None) -> Snapshot:
        changed_at = await self.store.registry_changed_at()
        if snapshot is not None and changed_at == snapshot.changed_at:
            snapshot.loaded_at = time.monotonic()
            return snapshot
        self._generation += 1
        fresh = Snapshot(self._generation, time.monotonic(), changed_at)
        for business in await self.store.list_businesses():
            for number in business.numbers:
                fresh.by_number[number] = business
            for number in business.whatsapp_numbers:
                fresh.by_whatsapp_sender[number] = business
            for locale in business.locales:
                stored = await self.store.script_version(business.name, locale)
                key = (business.name, locale, stored.version)
                if key not in self._versions:
                    self._versions[key] = LoadedScript(parse_script(stored.text), stored.version)
                fresh.published[(business.name, locale)] = self._versions[key]
        self.twiml = {}
        self._snapshot = fresh
        return fresh

    async def generation(self) -> int:
        return (await self.current()).generation

    async def business_for_number(self, number: str) -> Business | None:
        return (await self.current()).by_number.get(number)

    async def message_sender(self, channel: str, number: str) -> Business | None:
        """The business sending from `number` on `channel` ("whatsapp" or "sms"): on WhatsApp,
        the one with that sender number (--whatsapp-number) first, then the one with that number."""
        return (await self.current()).message_sender(channel, number)

    async def published(self, business: str, locale: str) -> LoadedScript:
        return (await self.current()).published[(business, locale)]

    async def version(self, business: str, locale: str, version: int) -> LoadedScript:
        key = (business, locale, version)
        if key not in self._versions:
            stored = await self.store.script_version(business, locale, version)
            self._versions[key] = LoadedScript(parse_script(stored.text), stored.version)
        return self._versions[key]
