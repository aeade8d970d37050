"""The append-only, hash-chained consent event log and the registry it belongs to.

Never imports `ivr`, Starlette or `voice_scripts`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from consent_store.chain import GENESIS_HASH, canonical_json, event_hash, text_sha256
from consent_store.events import (
    ACTIONS,
    Action,
    Business,
    CallStatus,
    ConsentDecision,
    DecisionRow,
    ExportFilter,
    PromptPlayed,
    RecordingStatus,
    ScriptVersion,
    Standing,
    StoredEvent,
    VerifyResult,
)
from consent_store.exceptions import BadDatabaseURL, StoreError, StoreUnavailable
from consent_store.protocol import ConsentStore
from consent_store.sqlite import SQLiteStore
from consent_store.url import parse_database_url

if TYPE_CHECKING:
    from consent_store.postgres import PostgresStore


def __getattr__(name: str) -> Any:
    # PostgreSQL's driver (asyncpg) costs about 0.2 s to import: only processes that use it pay,
    # not every `ivr` command on SQLite.
    if name == "PostgresStore":
        from consent_store.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module 'consent_store' has no attribute {name!r}")


__all__ = [
    "ACTIONS",
    "GENESIS_HASH",
    "Action",
    "BadDatabaseURL",
    "Business",
    "CallStatus",
    "ConsentDecision",
    "ConsentStore",
    "DecisionRow",
    "ExportFilter",
    "RecordingStatus",
    "PostgresStore",
    "PromptPlayed",
    "SQLiteStore",
    "ScriptVersion",
    "Standing",
    "StoreError",
    "StoreUnavailable",
    "StoredEvent",
    "VerifyResult",
    "canonical_json",
    "event_hash",
    "open_store",
    "text_sha256",
]


def open_store(url: str) -> ConsentStore:
    """A store for IVR_DATABASE_URL, not yet opened (use `async with` or `await .open()`).

    Returning either backend as a `ConsentStore` is where mypy checks both satisfy it."""
    parsed = parse_database_url(url)
    if parsed.scheme == "postgresql":
        from consent_store.postgres import PostgresStore

        return PostgresStore(parsed.raw)
    assert parsed.path is not None
    return SQLiteStore(parsed.path)
