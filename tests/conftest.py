"""Shared fixtures: a real SQLite file, the running app, a Twilio emulator."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from consent_store import ConsentStore
from ivr.app import create_app
from ivr.businesses import add_business
from ivr.settings import Settings
from ivr.twilio.emulator import TwilioEmulator
from tests.live_server import add_users, server, wait_until_healthy
from tests.memory_folder import memory_folder

# The tests' files (tmp_path: SQLite stores, exports, logs) in memory when /dev/shm has room and
# no TMPDIR was chosen: every SQLite commit syncs, and on the CI machine's disk ten busy files
# took 74 s of summed test time against 62 s in memory. pytest keeps the last three runs' folders
# (the largest, test_export_memory's stores, ~100 MB), hence the 4 GiB. The servers and commands
# the tests start inherit it. Files that must outlive a test go elsewhere (docs/images).
if "TMPDIR" not in os.environ and (in_memory := memory_folder(min_free=4 * 1024**3)) is not None:
    os.environ["TMPDIR"] = in_memory
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again

AUTH_TOKEN = "test-auth-token-0123456789abcdef"
ACME = "Acme Parcels"
ACME_NUMBER = "+15550001111"
BILINGUAL = "Tienda Sol"
BILINGUAL_NUMBER = "+34910000222"
CALLER = "+14155550123"


@dataclass
class Service:
    """The running app, its store and a Twilio emulator pointed at it."""

    store: ConsentStore
    twilio: TwilioEmulator
    db_url: str
    client: httpx.AsyncClient
    app: Starlette | None = None  # e.g. to make its catalog see a change made straight in the store


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ivr.db'}"


def make_settings(db_url: str, public_url: str | None = None) -> Settings:
    return Settings(database_url=db_url, twilio_auth_token=AUTH_TOKEN, public_url=public_url)


@pytest.fixture
async def service(db_url: str) -> AsyncIterator[Service]:
    app = create_app(make_settings(db_url))
    async with app.router.lifespan_context(app):
        store = app.state.runtime.store
        await add_business(store, ACME, [ACME_NUMBER], ["delivery updates", "appointment reminders"])
        await add_business(store, BILINGUAL, [BILINGUAL_NUMBER], ["avisos de entrega"], ["es-ES", "en-US"])
        # The catalog's watcher first checks the store 1 s after start-up: on a busy machine that can
        # fall between the two adds above, and a call to the second business right after would hear
        # it unknown until the next check. Loaded now, it holds both. A test that writes to the store
        # itself afterwards makes the catalog check again the same way (docs/testing.md).
        await app.state.runtime.catalog.refresh()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Service(store, TwilioEmulator(client, "http://testserver", AUTH_TOKEN), db_url, client, app)


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(os.environ.get("IVR_SCREENSHOTS", "/tmp/ivr-screenshots"))


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's headless Chromium driven by Playwright (skipped locally without it; CI installs it)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("CI must run the browser tests: install Debian's chromium (see .ci/run)")
        pytest.skip("Debian chromium is not installed (apt-get install chromium); CI installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A real `ivr serve` on a fresh SQLite file with one manager, alice (SITE_PASSWORD): its base URL
    and the environment that reaches it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "TWILIO_"))}
    env["IVR_DATABASE_URL"] = f"sqlite:///{tmp_path / 'ivr.db'}"
    log = tmp_path / "serve.log"
    with server(env, log) as (process, base):
        wait_until_healthy(base, process, log)
        add_users(env["IVR_DATABASE_URL"], {"alice": "manager"})  # as `ivr user add`, in this process
        yield base, env


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that start processes or are measured slow (tests/slow.py): `-m "not slow"`
    is the quick subset."""
    from tests.slow import mark_slow

    mark_slow(items)
