"""The single writer: one task, one connection, events committed in groups.

Every append to the SQLite log goes through this queue. The writer drains
whatever is waiting (up to MAX_BATCH), writes it in one transaction and
commits once, so many concurrent calls share one fsync. Each caller awaits
its own future, which resolves only after COMMIT returned. It never updates
or deletes an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite

from consent_store.chain import GENESIS_HASH, canonical_json, event_hash, text_sha256
from consent_store.events import NewEvent, StoredEvent
from consent_store.exceptions import ConflictingWrite, StoreError, StoreUnavailable

LOG = logging.getLogger(__name__)

MAX_BATCH = 256
# A checkpoint row is written whenever the chain passes a multiple of this.
CHECKPOINT_EVERY = 256
SideWrite = tuple[str, tuple[Any, ...]]


def utc_now() -> str:
    """UTC time with microseconds, ISO-8601 with a Z: sorts as text."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def subject_commitment(salt: str, phone: str) -> str:
    return hashlib.sha256((salt + phone).encode("utf-8")).hexdigest()


@dataclass
class _Append:
    event: NewEvent | None
    side_writes: Sequence[SideWrite]
    future: asyncio.Future[StoredEvent | None] = field(repr=False)


class SQLiteWriter:
    """Owns the only writing connection and the in-memory chain head."""

    def __init__(
        self, conn: aiosqlite.Connection, head_file: Path | None = None, max_batch: int = MAX_BATCH
    ) -> None:
        self._conn = conn
        self._head_file = head_file
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Append | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._head_seq = 0
        self._head_hash = GENESIS_HASH
        self.commits = 0

    async def start(self) -> None:
        await self._load_head()
        self._task = asyncio.create_task(self._run(), name="consent-store-writer")

    async def stop(self) -> None:
        if self._task is None:
            return
        await self._queue.put(None)
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def append(self, event: NewEvent, side_writes: Sequence[SideWrite] = ()) -> StoredEvent:
        """Queue an event; return once it is durably committed (or was already).

        `side_writes` run in the same transaction, all or nothing for this event.
        """
        stored = await self._enqueue(event, side_writes)
        assert stored is not None
        return stored

    async def side_write_only(self, side_writes: Sequence[SideWrite]) -> None:
        """Run statements that are not consent events (settings) through the writer."""
        await self._enqueue(None, side_writes)

    async def _enqueue(self, event: NewEvent | None, side_writes: Sequence[SideWrite]) -> StoredEvent | None:
        if not self.running:
            raise StoreUnavailable("the consent store writer is not running")
        future: asyncio.Future[StoredEvent | None] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Append(event, side_writes, future))
        return await future

    async def _load_head(self) -> None:
        async with self._conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1") as cur:
            row = await cur.fetchone()
        self._head_seq, self._head_hash = (int(row[0]), str(row[1])) if row else (0, GENESIS_HASH)

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

    async def _commit(self, batch: list[_Append]) -> None:
        head = (self._head_seq, self._head_hash)
        try:
            await self._conn.execute("BEGIN IMMEDIATE")
            results = await self._write(batch)
            await self._conn.execute("COMMIT")
        except Exception as exc:  # any failure: nothing of this batch is kept
            LOG.error("consent store write failed for %d events: %s", len(batch), exc)
            with contextlib.suppress(Exception):
                await self._conn.execute("ROLLBACK")
            self._head_seq, self._head_hash = head
            with contextlib.suppress(Exception):
                await self._load_head()
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
        if self._head_seq != head[0]:
            self._write_head_file()

    def _write_head_file(self) -> None:
        """Keep the chain head outside the database, so a truncated tail is noticed."""
        if self._head_file is None:
            return
        temporary = self._head_file.with_name(self._head_file.name + ".tmp")
        try:
            temporary.write_text(json.dumps({"seq": self._head_seq, "hash": self._head_hash}))
            os.replace(temporary, self._head_file)
        except OSError as exc:
            LOG.warning("could not update the chain head file %s: %s", self._head_file, exc)

    async def _side_writes(self, writes: Sequence[SideWrite]) -> Exception | None:
        """Run one item's extra statements under a savepoint: all of them or none."""
        if not writes:
            return None
        await self._conn.execute("SAVEPOINT item")
        try:
            for sql, params in writes:
                await self._conn.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            await self._conn.execute("ROLLBACK TO item")
            await self._conn.execute("RELEASE item")
            return ConflictingWrite(str(exc))
        await self._conn.execute("RELEASE item")
        return None

    async def _write(self, batch: list[_Append]) -> list[StoredEvent | None | Exception]:
        events = [item.event for item in batch if item.event is not None]
        existing = await self._existing(list({e.idempotency_key for e in events}))
        subjects = await self._subjects({e.phone for e in events if e.phone})
        results: list[StoredEvent | None | Exception] = []
        rows: list[tuple[Any, ...]] = []
        texts: dict[str, str] = {}
        for item in batch:
            event = item.event
            known = existing.get(event.idempotency_key) if event is not None else None
            if known is not None:
                results.append(known)
                continue
            failure = await self._side_writes(item.side_writes)
            if failure is not None or event is None:
                results.append(failure)
                continue
            seq = self._head_seq + 1
            recorded_at = utc_now()
            subject = subjects[event.phone] if event.phone else None
            body = canonical_json(
                {
                    "seq": seq,
                    "recorded_at": recorded_at,
                    "kind": event.kind,
                    "key": event.idempotency_key,
                    "call_sid": event.call_sid,
                    "business": event.business,
                    "subject": subject,
                    "data": dict(event.fields),
                }
            )
            digest = event_hash(self._head_hash, body)
            rows.append(
                (
                    seq,
                    recorded_at,
                    event.kind,
                    event.idempotency_key,
                    event.call_sid,
                    event.business,
                    subject,
                    event.action,
                    body,
                    self._head_hash,
                    digest,
                )
            )
            stored = StoredEvent(seq, recorded_at, event.kind, body, self._head_hash, digest)
            self._head_seq, self._head_hash = seq, digest
            existing[event.idempotency_key] = StoredEvent(
                seq, recorded_at, event.kind, body, stored.prev_hash, digest, duplicate=True
            )
            if event.spoken_text is not None:
                texts[text_sha256(event.spoken_text)] = event.spoken_text
            results.append(stored)
        if rows and (rows[0][0] - 1) // CHECKPOINT_EVERY != rows[-1][0] // CHECKPOINT_EVERY:
            await self._conn.execute(
                "INSERT INTO checkpoints (seq, hash, recorded_at) VALUES (?, ?, ?)",
                (rows[-1][0], rows[-1][10], rows[-1][1]),
            )
        if rows:
            await self._conn.executemany(
                "INSERT INTO events (seq, recorded_at, kind, idempotency_key, call_sid, business,"
                " subject, action, body, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
        if texts:
            await self._conn.executemany(
                "INSERT OR IGNORE INTO spoken_texts (sha256, text) VALUES (?, ?)", list(texts.items())
            )
        return results

    async def _existing(self, keys: list[str]) -> dict[str, StoredEvent]:
        found: dict[str, StoredEvent] = {}
        if not keys:
            return found
        marks = ",".join("?" * len(keys))
        sql = (
            "SELECT idempotency_key, seq, recorded_at, kind, body, prev_hash, hash"
            f" FROM events WHERE idempotency_key IN ({marks})"
        )
        async with self._conn.execute(sql, keys) as cur:
            async for key, seq, recorded_at, kind, body, prev_hash, digest in cur:
                found[key] = StoredEvent(seq, recorded_at, kind, body, prev_hash, digest, duplicate=True)
        return found

    async def _subjects(self, phones: set[str | None]) -> dict[str, str]:
        """Salted commitments for these phones, creating the missing ones."""
        wanted = sorted(p for p in phones if p)
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        found: dict[str, str] = {}
        async with self._conn.execute(
            f"SELECT phone, subject FROM subjects WHERE phone IN ({marks})", wanted
        ) as cur:
            async for phone, subject in cur:
                found[phone] = subject
        new_rows = []
        for phone in wanted:
            if phone not in found:
                salt = secrets.token_hex(16)
                found[phone] = subject_commitment(salt, phone)
                new_rows.append((found[phone], phone, salt))
        if new_rows:
            await self._conn.executemany(
                "INSERT INTO subjects (subject, phone, salt) VALUES (?, ?, ?)", new_rows
            )
        return found
