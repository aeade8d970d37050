"""Copying a whole consent log between stores (SQLite -> PostgreSQL, or back), verbatim.

Every event keeps its sequence number, body and hashes; businesses, numbers,
scripts, drafts, users, API tokens, subjects (phone commitments), spoken texts
and settings come along. The target must be empty, and its chain is verified
afterwards against the source's head. Never changes the source, never
recomputes a hash: a copy that does not verify the same is reported, not
repaired. Run it with the services stopped, so the source does not move.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from consent_store.chain import ChainRow
from consent_store.exceptions import CopyNotVerified, SourceChainBroken, TargetNotEmpty
from consent_store.postgres import PostgresStore

if TYPE_CHECKING:
    from consent_store import ConsentStore

LOG = logging.getLogger(__name__)

# Registry tables in an order that satisfies their foreign keys.
TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("businesses", ("name", "message_types", "locales", "demo", "created_at")),
    ("numbers", ("number", "business")),
    ("scripts", ("business", "locale", "version", "status", "text", "sha256", "created_at", "author")),
    ("script_drafts", ("business", "locale", "text", "sha256", "updated_at", "author")),
    ("users", ("name", "role", "password_hash", "created_at", "disabled")),
    ("api_tokens", ("name", "token_sha256", "created_at", "revoked_at")),
    ("subjects", ("subject", "phone", "salt")),
    ("spoken_texts", ("sha256", "text")),
)
_CHUNK = 2000


@dataclass(frozen=True)
class CopyReport:
    events: int
    head: str
    rows: dict[str, int]


class _Target(Protocol):
    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None: ...

    async def put_settings(self, rows: Sequence[Sequence[Any]]) -> None: ...

    async def set_head(self, seq: int, digest: str) -> None: ...


class _PostgresTarget:
    """Everything in one transaction: a failed copy leaves the target empty."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        await self.conn.copy_records_to_table(table, records=[tuple(r) for r in rows], columns=list(columns))

    async def put_settings(self, rows: Sequence[Sequence[Any]]) -> None:
        await self.conn.executemany(
            "INSERT INTO settings (key, value) VALUES ($1, $2)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [tuple(r) for r in rows],
        )

    async def set_head(self, seq: int, digest: str) -> None:
        await self.conn.execute("UPDATE chain_head SET seq = $1, hash = $2 WHERE id = 1", seq, digest)


class _WriterTarget:
    """Through the target's single writer, a chunk per transaction (the SQLite store)."""

    def __init__(self, store: ConsentStore) -> None:
        self.store = store

    async def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        await self.store._side_writes([(sql, tuple(row)) for row in rows])

    async def put_settings(self, rows: Sequence[Sequence[Any]]) -> None:
        sql = (
            "INSERT INTO settings (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        )
        await self.store._side_writes([(sql, tuple(row)) for row in rows])

    async def set_head(self, seq: int, digest: str) -> None:
        """The SQLite writer re-reads its head from the events and writes its head file on close."""


@contextlib.asynccontextmanager
async def _open_target(target: ConsentStore) -> AsyncIterator[_Target]:
    if isinstance(target, PostgresStore):
        async with target._pool.acquire() as conn, conn.transaction():
            # Appenders in other processes wait for the copy instead of interleaving with it.
            await conn.execute("SELECT 1 FROM chain_head WHERE id = 1 FOR UPDATE")
            yield _PostgresTarget(conn)
    else:
        yield _WriterTarget(target)


async def _refuse_non_empty(target: ConsentStore) -> None:
    if count := await target.event_count():
        raise TargetNotEmpty(f"{count} consent records")
    for table in ("businesses", "users", "subjects"):
        if await target._fetchone(f"SELECT 1 FROM {table} LIMIT 1"):
            raise TargetNotEmpty(f"rows in its {table} table")


async def copy_log(source: ConsentStore, target: ConsentStore) -> CopyReport:
    """Copy everything from `source` into the empty `target` (both open), then verify the target.

    Raises TargetNotEmpty, SourceChainBroken (nothing copied) or CopyNotVerified."""
    before = await source.verify()
    if not before.intact:
        raise SourceChainBroken(before)
    await _refuse_non_empty(target)
    copied: dict[str, int] = {}
    async with _open_target(target) as sink:
        for table, columns in TABLES:
            rows = await source._fetchall(f"SELECT {', '.join(columns)} FROM {table}")
            for start in range(0, len(rows), _CHUNK):
                await sink.insert(table, columns, rows[start : start + _CHUNK])
            copied[table] = len(rows)
        settings = await source._fetchall("SELECT key, value FROM settings WHERE key <> 'health_probe'")
        await sink.put_settings(settings)
        copied["settings"] = len(settings)
        count, head = 0, before.head
        async for batch in source.chain_rows():
            await sink.insert("events", ChainRow._fields, batch)
            count += len(batch)
            head = batch[-1].hash
        copied["events"] = count
        checkpoints = await source._fetchall("SELECT seq, hash, recorded_at FROM checkpoints")
        await sink.insert("checkpoints", ("seq", "hash", "recorded_at"), checkpoints)
        copied["checkpoints"] = len(checkpoints)
        if count:
            await sink.set_head(count, head)
    after = await target.verify()
    if not after.intact or (after.count, after.head) != (before.count, before.head):
        raise CopyNotVerified(before, after)
    LOG.info("copied %d consent records, head %s", after.count, after.head)
    return CopyReport(events=after.count, head=after.head, rows=copied)
