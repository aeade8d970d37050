"""Businesses, numbers and scripts kept in memory for the webhooks, so a call costs one
store read (the caller's standing) instead of five.

Checked every RELOAD_SECONDS (one indexed read of the latest business or script
change) and reloaded only when something changed, or at once after a change made in
this process; a script published from another process reaches calls within that time.
A call always names the script version it heard, and versions never change, so
those are cached for good.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from consent_store import Business, ConsentStore
from ivr.call_flow import LoadedScript
from voice_scripts import parse_script

RELOAD_SECONDS = 1.0


@dataclass
class _Snapshot:
    generation: int
    loaded_at: float
    changed_at: int = 0  # the store's registry_changed_at() when loaded
    by_number: dict[str, Business] = field(default_factory=dict)
    published: dict[tuple[str, str], LoadedScript] = field(default_factory=dict)


class Catalog:
    def __init__(self, store: ConsentStore, reload_seconds: float = RELOAD_SECONDS) -> None:
        self.store = store
        self.reload_seconds = reload_seconds
        self._snapshot: _Snapshot | None = None
        self._versions: dict[tuple[str, str, int], LoadedScript] = {}
        self._lock = asyncio.Lock()
        self._generation = 0
        # Rendered TwiML that depends only on catalog data, per generation.
        self.twiml: dict[tuple[object, ...], str] = {}

    def invalidate(self) -> None:
        self._snapshot = None

    async def _current(self) -> _Snapshot:
        snapshot = self._snapshot
        if snapshot is not None and time.monotonic() - snapshot.loaded_at < self.reload_seconds:
            return snapshot
        async with self._lock:
            if self._snapshot is not None and self._snapshot is not snapshot:
                return self._snapshot
            changed_at = await self.store.registry_changed_at()
            if snapshot is not None and changed_at == snapshot.changed_at:
                snapshot.loaded_at = time.monotonic()
                return snapshot
            self._generation += 1
            fresh = _Snapshot(self._generation, time.monotonic(), changed_at)
            for business in await self.store.list_businesses():
                for number in business.numbers:
                    fresh.by_number[number] = business
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
        return (await self._current()).generation

    async def business_for_number(self, number: str) -> Business | None:
        return (await self._current()).by_number.get(number)

    async def published(self, business: str, locale: str) -> LoadedScript:
        return (await self._current()).published[(business, locale)]

    async def version(self, business: str, locale: str, version: int) -> LoadedScript:
        key = (business, locale, version)
        if key not in self._versions:
            stored = await self.store.script_version(business, locale, version)
            self._versions[key] = LoadedScript(parse_script(stored.text), stored.version)
        return self._versions[key]
