"""What every `ivr` command shares: settings, opening the store, mapping errors to exit codes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from consent_store import ConsentStore, StoreError, StoreUnavailable, open_store
from consent_store.exceptions import BadDatabaseURL, SchemaTooNew
from ivr.businesses import InvalidBusiness
from ivr.settings import Settings
from voice_scripts import ScriptError

T = TypeVar("T")


class CliFailure(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def settings_from_env() -> Settings:
    try:
        return Settings.from_env()
    except ValueError as exc:
        raise CliFailure(str(exc), 2) from exc


def with_store(work: Callable[[ConsentStore], Awaitable[T]]) -> T:
    """Open the store named by IVR_DATABASE_URL, run `work`, close it; map errors to CliFailure."""

    async def run() -> T:
        store = open_store(settings_from_env().database_url)
        async with store:
            return await work(store)

    return with_store_errors(run)


def with_store_errors(run: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion, mapping store and input errors to CliFailure."""
    try:
        return asyncio.run(run())  # type: ignore[arg-type]
    except (BadDatabaseURL, SchemaTooNew) as exc:
        raise CliFailure(str(exc), 2) from exc
    except StoreUnavailable as exc:
        raise CliFailure(str(exc), 1) from exc
    except (StoreError, ScriptError, InvalidBusiness, ValueError) as exc:
        raise CliFailure(str(exc), 2) from exc
