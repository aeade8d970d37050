"""What the shared store logic needs of a backend: read, append, side-write, checkpoint, dialect.

Declared once here. The logic that both backends share (the registry, access, audit, stats
and recording reads, and the module-level functions of `recording_holds`, `recording_gaps`)
is written against `StoreBackend`; `SQLiteStore` and `PostgresStore` provide it. SQL is
written with `?` placeholders (PostgreSQL translates them once); the three dialect
helpers produce the few fragments whose syntax differs (both forms in
`consent_store.dialect`: SQLite's set on `StatsMixin`, PostgreSQL's on `PostgresStore`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from consent_store.events import NewEvent, StoredEvent
from consent_store.group_commit import SideWrite


class StoreReads(Protocol):
    """Reads: each runs one statement to its end and returns its rows."""

    async def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...


class StoreBackend(StoreReads, Protocol):
    """Everything the shared store logic calls on its host (both backends provide it)."""

    async def _append(self, event: NewEvent, side_writes: Sequence[SideWrite] = ()) -> StoredEvent:
        """Chain one event (and the side writes that go with it) through the single writer."""
        ...

    async def _side_writes(self, writes: Sequence[SideWrite]) -> None:
        """Statements that are not consent events, through the single writer."""
        ...

    async def _bulk_side_writes(self, writes: Sequence[SideWrite]) -> None:
        """Side writes that come by the thousand a second (status callbacks), needing no other
        write's outcome: the single writer on PostgreSQL, a process of their own on SQLite."""
        ...

    def _start_bulk_side_writes(self, writes: Sequence[SideWrite]) -> asyncio.Future[None]:
        """`_bulk_side_writes` without a coroutine: a future resolved once they are durable."""
        ...

    async def _checkpoint(self) -> None:
        """After an erasure: make deleted content leave the files (SQLite WAL, PostgreSQL VACUUM)."""
        ...

    # The dialect hooks: each store class sets them to its `consent_store.dialect.Dialect`'s
    # methods (static: `StatsMixin._json_text` is SQLite's, callable without a store).
    def _json_text(self, column: str, *path: str) -> str:
        """SQL for a field of a JSON body, as text or number."""
        ...

    def _within_days(self, earlier: str, later: str, days: int) -> str:
        """SQL: is the ISO-8601 text `later` at most `days` days after `earlier`?"""
        ...

    def _joined_text(self, expression: str, separator: str, order_by: str) -> str:
        """SQL aggregate: the texts joined by `separator`, in `order_by` order."""
        ...
