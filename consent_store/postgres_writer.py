"""The per-process writer of the PostgreSQL backend: one task, events committed in groups.

Every append from this process goes through one queue to one task, which
drains what is waiting (up to MAX_BATCH) and writes it in one transaction.
Several processes share the database: each transaction first locks the single
`chain_head` row (SELECT ... FOR UPDATE), reads the head from it, inserts the
group and moves the head in the same transaction, so the chain stays one line
whoever appends. Each caller awaits its own future, resolved only after COMMIT
returned. It never updates or deletes an event; a failed group is reported to
each of its callers as not recorded, and the next group takes a fresh
connection from the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from consent_store.chain import chain_event, text_sha256
from consent_store.events import NewEvent, StoredEvent
from consent_store.exceptions import ConflictingWrite, StoreError, StoreUnavailable
from consent_store.sqlite_writer import CHECKPOINT_EVERY, MAX_BATCH, SideWrite, subject_commitment, utc_now

LOG = logging.getLogger(__name__)

# What a lost, refused or stalled connection raises: reported as StoreUnavailable.
PG_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)
# Seconds to wait for a pooled connection before a write is reported as failed.
ACQUIRE_TIMEOUT = 10.0


@functools.lru_cache(maxsize=1024)
def pg_sql(sql: str) -> str:
    """The store's `?` placeholders as PostgreSQL's `$1, $2, ...` (never inside '...' literals)."""
    parts = sql.split("'")
    number = 0
    for index in range(0, len(parts), 2):
        pieces = parts[index].split("?")
        text = pieces[0]
        for piece in pieces[1:]:
            number += 1
            text += f"${number}{piece}"
        parts[index] = text
    return "'".join(parts)


@dataclass
class _Append:
    event: NewEvent | None
    side_writes: Sequence[SideWrite]
    future: asyncio.Future[StoredEvent | None] = field(repr=False)


_Outcome = StoredEvent | None | Exception
_INSERT_GROUP = (
    "WITH appended AS (INSERT INTO events (seq, recorded_at, kind, idempotency_key, call_sid, business,"
    " subject, action, body, prev_hash, hash) SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[],"
    " $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])),"
    " texts AS (INSERT INTO spoken_texts (sha256, text) SELECT * FROM unnest($12::text[], $13::text[])"
    " ON CONFLICT (sha256) DO NOTHING),"
    " checkpointed AS (INSERT INTO checkpoints (seq, hash, recorded_at)"
    " SELECT * FROM unnest($14::bigint[], $15::text[], $16::text[]))"
    " UPDATE chain_head SET seq = $17, hash = $18 WHERE id = 1"
)


class PostgresWriter:
    """This process's only appender; the database lock orders it with other processes' writers."""

    def __init__(self, pool: asyncpg.Pool, max_batch: int = MAX_BATCH) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Append | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.commits = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="consent-store-writer")

    async def stop(self) -> None:
        if self._task is not None:
            await self._queue.put(None)
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def append(self, event: NewEvent, side_writes: Sequence[SideWrite] = ()) -> StoredEvent:
        """Queue an event; return once it is durably committed (or was already)."""
        stored = await self._enqueue(event, side_writes)
        assert stored is not None
        return stored

    async def side_write_only(self, side_writes: Sequence[SideWrite]) -> None:
        """Run statements that are not consent events (settings, drafts) through the writer."""
        await self._enqueue(None, side_writes)

    async def _enqueue(self, event: NewEvent | None, side_writes: Sequence[SideWrite]) -> StoredEvent | None:
        if not self.running:
            raise StoreUnavailable("the consent store writer is not running")
        future: asyncio.Future[StoredEvent | None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Append(event, side_writes, future))
        return await future

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            await self._commit(batch)
            await asyncio.sleep(0)  # callers just answered may append again: they join the next group

    async def _commit(self, batch: list[_Append]) -> None:
        try:
            async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
                async with conn.transaction():
                    results = await self._write(conn, [(i.event, i.side_writes) for i in batch])
        except Exception as exc:  # any failure (lost connection, failover): nothing of this group is kept
            LOG.error("consent store write failed for %d events: %s", len(batch), exc)
            error = exc if isinstance(exc, StoreError) else StoreUnavailable(f"could not write: {exc}")
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(error)
            return
        self.commits += 1
        for item, outcome in zip(batch, results, strict=True):
            if item.future.done():
                continue
            if isinstance(outcome, Exception):
                item.future.set_exception(outcome)
            else:
                item.future.set_result(outcome)

    async def _write(
        self, conn: asyncpg.Connection, batch: list[tuple[NewEvent | None, Sequence[SideWrite]]]
    ) -> list[_Outcome]:
        events = [event for event, _ in batch if event is not None]
        existing: dict[str, StoredEvent] = {}
        subjects: dict[str, str] = {}
        head_seq, head_hash = 0, ""
        if events:
            # The lock every appender takes, in every process; held to COMMIT.
            head = await conn.fetchrow("SELECT seq, hash FROM chain_head WHERE id = 1 FOR UPDATE")
            if head is None:
                raise StoreUnavailable("the chain_head row is missing: run 'ivr verify'")
            head_seq, head_hash = int(head[0]), str(head[1])
            existing = await _existing(conn, list({e.idempotency_key for e in events}))
            subjects = await _subjects(conn, {e.phone for e in events if e.phone})
        results: list[_Outcome] = []
        rows: list[tuple[Any, ...]] = []
        texts: dict[str, str] = {}
        for event, side_writes in batch:
            known = existing.get(event.idempotency_key) if event is not None else None
            if known is not None:
                results.append(known)
                continue
            failure = await _side_writes(conn, side_writes)
            if failure is not None or event is None:
                results.append(failure)
                continue
            seq, prev_hash, recorded_at = head_seq + 1, head_hash, utc_now()
            subject = subjects[event.phone] if event.phone else None
            row = chain_event(event, seq, prev_hash, recorded_at, subject)
            rows.append(row)
            head_seq, head_hash = seq, row.hash
            results.append(StoredEvent(seq, recorded_at, event.kind, row.body, prev_hash, row.hash))
            existing[event.idempotency_key] = StoredEvent(
                seq, recorded_at, event.kind, row.body, prev_hash, row.hash, duplicate=True
            )
            if event.spoken_text is not None:
                texts[text_sha256(event.spoken_text)] = event.spoken_text
        if rows:
            checkpoint: tuple[list[Any], ...] = ([], [], [])
            if (rows[0][0] - 1) // CHECKPOINT_EVERY != rows[-1][0] // CHECKPOINT_EVERY:
                checkpoint = ([rows[-1][0]], [rows[-1][10]], [rows[-1][1]])
            # One round trip for the whole group while the chain lock is held.
            await conn.execute(
                _INSERT_GROUP,
                *(list(column) for column in zip(*rows, strict=True)),
                list(texts),
                list(texts.values()),
                *checkpoint,
                head_seq,
                head_hash,
            )
        return results


async def _side_writes(conn: asyncpg.Connection, writes: Sequence[SideWrite]) -> Exception | None:
    """One item's extra statements under a savepoint: all of them or none."""
    if not writes:
        return None
    try:
        async with conn.transaction():
            for sql, params in writes:
                await conn.execute(pg_sql(sql), *params)
    except asyncpg.IntegrityConstraintViolationError as exc:
        return ConflictingWrite(str(exc))
    return None


async def _existing(conn: asyncpg.Connection, keys: list[str]) -> dict[str, StoredEvent]:
    rows = await conn.fetch(
        "SELECT idempotency_key, seq, recorded_at, kind, body, prev_hash, hash FROM events"
        " WHERE idempotency_key = ANY($1::text[])",
        keys,
    )
    return {
        row[0]: StoredEvent(row[1], row[2], row[3], row[4], row[5], row[6], duplicate=True) for row in rows
    }


async def _subjects(conn: asyncpg.Connection, phones: set[str | None]) -> dict[str, str]:
    """Salted commitments for these phones, creating the missing ones, in one round trip.

    Only appenders holding the chain lock create subjects, so the insert never waits on another."""
    wanted = sorted(p for p in phones if p)
    if not wanted:
        return {}
    salts = [secrets.token_hex(16) for _ in wanted]
    rows = await conn.fetch(
        "WITH created AS (INSERT INTO subjects (subject, phone, salt)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT (phone) DO NOTHING"
        " RETURNING phone, subject)"
        " SELECT phone, subject FROM created UNION ALL SELECT phone, subject FROM subjects"
        " WHERE phone = ANY($2::text[])",
        [subject_commitment(salt, phone) for salt, phone in zip(salts, wanted, strict=True)],
        wanted,
        salts,
    )
    return {row[0]: row[1] for row in rows}
