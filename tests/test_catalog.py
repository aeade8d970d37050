"""The webhooks' in-memory businesses and scripts follow changes made by another process."""

from __future__ import annotations

import asyncio
from pathlib import Path

from consent_store import open_store
from ivr.businesses import add_business
from ivr.twilio.catalog import Catalog
from tests.conftest import ACME, ACME_NUMBER, CALLER, Service


async def test_a_script_published_by_another_process_reaches_calls_after_the_reload(service: Service) -> None:
    first = await service.twilio.call(ACME_NUMBER, CALLER, ["-", "-", "-"], status_callback=False)
    text = (await service.store.script_version(ACME, "en-US")).text
    newer = text.replace("We would like", "We, your carrier, would like", 1)
    assert newer != text
    async with open_store(service.db_url) as other:  # another `ivr serve` on the same file
        await other.publish_script(ACME, "en-US", newer, "mia")
    await asyncio.sleep(1.5)  # RELOAD_SECONDS, and the check itself
    second = await service.twilio.call(ACME_NUMBER, CALLER, ["-", "-", "-"], status_callback=False)
    assert "your carrier" not in first.transcript and "your carrier" in second.transcript


async def test_the_catalog_reloads_only_when_a_business_or_script_changed(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'c.db'}") as store:
        catalog = Catalog(store, reload_seconds=0.0)  # no watcher: checks the store on every look-up
        empty = await catalog.generation()
        assert await catalog.generation() == empty and await store.registry_changed_at() == 0
        await add_business(store, "Sol", ["+34910000333"], ["offers"])
        changed = await catalog.generation()
        assert changed > empty and await catalog.business_for_number("+34910000333") is not None
        assert await catalog.generation() == changed


async def test_with_its_watcher_running_look_ups_never_wait_for_the_store(tmp_path: Path) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'c.db'}") as store:
        catalog = Catalog(store, reload_seconds=0.05)
        first = await catalog.generation()  # the first load
        watcher = asyncio.create_task(catalog.watch())
        try:
            await asyncio.sleep(0.12)  # the watcher checked twice: nothing changed
            await add_business(store, "Sol", ["+34910000333"], ["offers"])
            await store.close()  # a look-up that read the store now would fail
            # The watcher may or may not have checked between the add and the close (a busy
            # machine decides); either way the look-ups answer from memory, consistently.
            generation = await catalog.generation()
            found = await catalog.business_for_number("+34910000333")
            assert (generation, found is None) in ((first, True), (first + 1, False))
        finally:
            watcher.cancel()


async def test_the_watcher_survives_an_unexpected_failure_and_look_ups_still_answer_from_memory(
    tmp_path: Path,
) -> None:
    async with open_store(f"sqlite:///{tmp_path / 'c.db'}") as store:
        await add_business(store, "Sol", ["+34910000333"], ["offers"])
        catalog = Catalog(store, reload_seconds=0.02)
        first = await catalog.generation()
        calls = 0

        async def broken() -> int:  # e.g. the driver raising something that is not a StoreError
            nonlocal calls
            calls += 1
            raise RuntimeError("connection reset in the middle of a read")

        store.registry_changed_at = broken  # type: ignore[method-assign]
        watcher = asyncio.create_task(catalog.watch())
        try:
            for _ in range(500):  # the watcher failed three times and is still checking
                if calls >= 3 or watcher.done():
                    break
                await asyncio.sleep(0.01)
            assert calls >= 3 and not watcher.done()
            assert await catalog.generation() == first  # from memory: no look-up reads the store
            assert await catalog.business_for_number("+34910000333") is not None
        finally:
            watcher.cancel()
