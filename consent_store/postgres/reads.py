"""PostgreSQL reads that differ from SQLite's: streamed export and verification, audits, erasure.

Exports and verification read one snapshot (a REPEATABLE READ, read-only
transaction) through a server-side cursor, so memory stays flat however long
the log is. The only write here is the erasure, appended through the writer
like every other event; nothing here updates or deletes an event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Protocol

import asyncpg

from consent_store import subject_check as subjects
from consent_store.backend import StoreBackend
from consent_store.chain import ChainRow, ChainVerifier
from consent_store.columns import EVENT_COLUMNS, CsvChunk, csv_chunks
from consent_store.decisions import (
    RECORDING_HEADS,
    OnSnapshot,
    decision_row_from_record,
    export_bound,
    recording_sql,
)
from consent_store.events import DecisionRow, ExportFilter, VerifyResult
from consent_store.exceptions import StoreUnavailable
from consent_store.postgres.writer import PG_ERRORS, pg_sql
from consent_store.queries import decision_filter

_CHUNK = 5000
_CHAIN_SELECT = f"SELECT {', '.join(ChainRow._fields)} FROM events"


class PostgresBackend(StoreBackend, Protocol):
    """The `StoreBackend` primitives and the connection pool they run on."""

    @property
    def _pool(self) -> asyncpg.Pool: ...


class PostgresReadsMixin(PostgresBackend):
    """Mixed into PostgresStore, which provides `PostgresBackend`."""

    @contextlib.asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection inside one read-only REPEATABLE READ transaction."""
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            yield conn

    async def export_decisions(
        self,
        where: ExportFilter,
        on_snapshot: OnSnapshot | None = None,
    ) -> AsyncGenerator[DecisionRow, None]:
        """Every decision matching the filter, oldest first, streamed by a server-side cursor.

        One snapshot, up to its head (or record `where.through_seq`), recordings included;
        `on_snapshot(seq, hash)` is told which record that is before the first row
        (the genesis hash for record 0, None if the log holds no such record).
        """
        clause, params = decision_filter(where)
        events = ", ".join(f"e.{c.key}" for c in EVENT_COLUMNS)
        # The decision's recording by the one rule of consent_store.decisions.
        sql = pg_sql(
            f"SELECT e.seq, s.phone, e.body, {recording_sql(self._json_text, 'r.body')},"
            f" {events} FROM events e LEFT JOIN subjects s ON s.subject = e.subject"
            f" WHERE {clause} AND e.seq <= ? ORDER BY e.seq"
        )
        try:
            async with self._snapshot() as conn:
                head_seq, head_hash = await export_bound(
                    lambda sql, params: conn.fetchrow(pg_sql(sql), *params), where.through_seq
                )
                if on_snapshot is not None:
                    on_snapshot(head_seq, head_hash)
                heads = (head_seq,) * RECORDING_HEADS
                async for seq, phone, body, recording, *event in conn.cursor(
                    sql, *heads, *params, head_seq, prefetch=2000
                ):
                    try:
                        row = decision_row_from_record(seq, event, phone, body, recording)
                    except (ValueError, KeyError, TypeError) as exc:
                        raise StoreUnavailable(
                            f"decision record {seq} cannot be read ({exc}): run 'ivr verify'"
                        ) from exc
                    yield row
        except PG_ERRORS as exc:
            raise StoreUnavailable(f"could not read the consent store: {exc}") from exc

    def export_csv_chunks(
        self,
        where: ExportFilter,
        on_snapshot: OnSnapshot | None = None,
    ) -> AsyncGenerator[CsvChunk, None]:
        """The CSV rows (no header) of `export_decisions`, rendered in Python."""
        return csv_chunks(self.export_decisions(where, on_snapshot))

    async def chain_rows(self) -> AsyncIterator[list[ChainRow]]:
        """All events in sequence order, in batches, from one snapshot."""
        try:
            async with self._snapshot() as conn:
                cursor = await conn.cursor(f"{_CHAIN_SELECT} ORDER BY seq")
                while batch := await cursor.fetch(_CHUNK):
                    yield [ChainRow(*row) for row in batch]
        except PG_ERRORS as exc:
            raise StoreUnavailable(f"could not read the consent store: {exc}") from exc

    async def verify(
        self, progress: Callable[[int], None] | None = None, *, use_head: bool = True
    ) -> VerifyResult:
        """Re-compute the whole chain from one snapshot, through every checkpoint and the chain head;
        then hold every subject's phone to the commitment the chain holds (`subject_check`).

        `progress(records_checked)` is called from time to time. `use_head=False` trusts the
        checkpoints alone (for `reanchor_head_file`)."""
        try:
            async with self._snapshot() as conn:
                anchors = {int(s): str(h) for s, h in await conn.fetch("SELECT seq, hash FROM checkpoints")}
                warnings: list[str] = []
                head = await conn.fetchrow("SELECT seq, hash FROM chain_head WHERE id = 1")
                if head is None:
                    warnings.append("the chain_head row is missing: a deleted tail cannot be detected")
                elif use_head and int(head[0]) > 0:
                    anchors[int(head[0])] = str(head[1])
                verifier = ChainVerifier(anchors, warnings)
                cursor = await conn.cursor(f"{_CHAIN_SELECT} ORDER BY seq")
                while batch := await cursor.fetch(_CHUNK):
                    # Hashing off the event loop: a long verify never stalls a caller's webhook.
                    sound = await asyncio.to_thread(verifier.feed, [tuple(row) for row in batch])
                    if progress is not None:
                        progress(verifier.count)
                    if not sound:
                        break
                return await _verify_subjects(conn, verifier.result())
        except PG_ERRORS as exc:
            raise StoreUnavailable(f"could not read the consent store: {exc}") from exc

    async def reanchor_head_file(self) -> VerifyResult:
        """After a deliberate restore: verify against the checkpoints alone and, if intact, set the
        `chain_head` row to the chain's last record. Run it with every service stopped.

        PostgreSQL has no head file: the head lives in the database, moved in the same
        transaction as each append, so a restore brings back a matching head and this is
        rarely needed; it is kept so `ivr verify --reanchor` means the same on both backends."""
        result = await self.verify(use_head=False)
        if result.intact:
            try:
                await self._pool.execute(
                    "UPDATE chain_head SET seq = $1, hash = $2 WHERE id = 1", result.count, result.head
                )
            except PG_ERRORS as exc:
                raise StoreUnavailable(f"could not move the chain head: {exc}") from exc
        return result


async def _verify_subjects(conn: asyncpg.Connection, result: VerifyResult) -> VerifyResult:
    """An intact chain's result, or the first record whose caller's phone was edited or deleted."""
    if not result.intact:
        return result
    edited: list[str] = []
    cursor = await conn.cursor(subjects.SUBJECT_ROWS_SQL)
    while batch := await cursor.fetch(_CHUNK):
        edited += await asyncio.to_thread(subjects.edited_subjects, [tuple(row) for row in batch])
    deleted = []
    for subject, seq in await conn.fetch(subjects.MISSING_SUBJECTS_SQL):
        erasure = await conn.fetchrow(pg_sql(subjects.ERASURE_SQL), subjects.erasure_key(subject))
        if not subjects.erased(subject, erasure):
            deleted.append((str(subject), int(seq)))
    first = [(subject, await conn.fetchval(pg_sql(subjects.FIRST_RECORD_SQL), subject)) for subject in edited]
    return subjects.binding_result(result, first, deleted)
