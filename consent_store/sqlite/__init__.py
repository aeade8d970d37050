"""The embedded SQLite backend of the consent store (aiosqlite, WAL, synchronous=FULL).

Writes go through the single group-committing writer; reads use their own
connections so an export never blocks a caller's decision. Never updates or
deletes a consent event.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import sqlite3
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from consent_store.access import AccessMixin
from consent_store.audit_reads import STANDING_SQL, AuditMixin, standing_from_row
from consent_store.business_changes import BusinessChangesMixin
from consent_store.call_log import CallLogMixin
from consent_store.chain import ChainRow
from consent_store.columns import CsvChunk
from consent_store.decisions import OnSnapshot, export_bound
from consent_store.events import (
    DecisionRow,
    ExportFilter,
    Standing,
    VerifyResult,
)
from consent_store.exceptions import (
    StoreUnavailable,
    opened,
)
from consent_store.group_commit import QueuedStore, SideWrite
from consent_store.opt_out_webhooks import OptOutWebhooksMixin
from consent_store.queries import decision_filter
from consent_store.sqlite.export import export_csv_chunks, fetchone_on
from consent_store.sqlite.export_sql import RowDecoder, rows_sql
from consent_store.sqlite.schema import HEAD_FILE_SINCE_VERSION, migrate
from consent_store.sqlite.status_process import StatusWriterProcess
from consent_store.sqlite.verify import verify_database
from consent_store.sqlite.writer import (
    PRAGMAS,
    SQLiteWriter,
    create_private_file,
    write_private_text,
)
from consent_store.stats import StatsMixin
from consent_store.writing import MAX_BATCH

_CHUNK = 2000


READ_MMAP_BYTES = 1 << 30  # address space, not memory: pages stay in the OS cache


async def _connect(path: Path) -> aiosqlite.Connection:
    try:
        conn = await aiosqlite.connect(path, isolation_level=None, iter_chunk_size=_CHUNK)
    except Exception as exc:
        raise StoreUnavailable(f"cannot open SQLite database {path}: {exc}") from exc
    try:
        for pragma in PRAGMAS:
            await conn.execute(pragma)
    except Exception as exc:
        await conn.close()  # else its thread keeps the process alive
        raise StoreUnavailable(f"cannot open SQLite database {path}: {exc}") from exc
    return conn


_BUSY = object()


class SQLiteStore(
    QueuedStore,
    CallLogMixin,
    AccessMixin,
    AuditMixin,
    StatsMixin,
    BusinessChangesMixin,
    OptOutWebhooksMixin,
):
    """Consent store on one SQLite file."""

    def __init__(self, path: Path, max_batch: int = MAX_BATCH) -> None:
        self.path = path
        self.head_file = path.with_name(path.name + ".chainhead")
        self._max_batch = max_batch
        self._read_conn: aiosqlite.Connection | None = None
        self._quick_conn: sqlite3.Connection | None = None
        self._writer: SQLiteWriter | None = None
        self._status_lane: StatusWriterProcess | None = None

    async def open(self) -> None:
        try:
            # Before SQLite creates it 0644: its WAL and SHM files take the database's mode.
            await asyncio.to_thread(create_private_file, self.path)
        except OSError as exc:
            raise StoreUnavailable(f"cannot open SQLite database {self.path}: {exc}") from exc
        conn = await _connect(self.path)
        try:
            found_version = await migrate(conn)
        finally:
            await conn.close()
        writer = SQLiteWriter(
            self.path,
            head_file=self.head_file,
            max_batch=self._max_batch,
            # Databases from before schema 2 never had a head file: start one.
            adopt_missing_head_file=found_version < HEAD_FILE_SINCE_VERSION,
        )
        await writer.start()
        try:
            self._read_conn = await _connect(self.path)
            # Reads map the file instead of copying pages through read(): large scans (a
            # compliance report over a million statuses, exports) spend about a fifth less CPU.
            await self._read_conn.execute(f"PRAGMA mmap_size = {READ_MMAP_BYTES}")
            self._quick_conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._quick_conn.execute("PRAGMA query_only = ON")
            self._quick_conn.execute("PRAGMA busy_timeout = 0")  # never wait on the event loop
        except BaseException:
            await writer.stop()
            raise
        self._writer = writer
        self._status_lane = StatusWriterProcess(self.path)

    async def close(self) -> None:
        if self._status_lane is not None:
            await self._status_lane.stop()
            self._status_lane = None
        if self._writer is not None:
            await self._writer.stop()
        if self._quick_conn is not None:
            self._quick_conn.close()
            self._quick_conn = None
        if self._read_conn is not None:
            await self._read_conn.close()
        self._writer = self._read_conn = None

    @property
    def _reader(self) -> aiosqlite.Connection:
        return opened(self._read_conn)

    def _quick_read(self, sql: str, params: Sequence[Any]) -> Any:
        """One small indexed read right on the event loop (about 10 µs, cheaper than a thread
        hand-off); _BUSY if the database is locked, so the caller reads the usual way."""
        if self._quick_conn is None:
            return _BUSY
        try:
            rows = self._quick_conn.execute(sql, params).fetchall()  # run to the end: no open snapshot
        except sqlite3.OperationalError:
            return _BUSY
        return rows[0] if rows else None

    async def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = await self._fetchall(sql, params)
        return rows[0] if rows else None

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        # One hand-off that runs the statement to its end: a cursor left open across
        # hand-offs would keep the shared read connection on an old snapshot, and a caller
        # who just opted in could be read as not opted in.
        try:
            return list(await self._reader.execute_fetchall(sql, params))
        except aiosqlite.Error as exc:
            raise StoreUnavailable(f"could not read the consent store: {exc}") from exc

    async def _bulk_side_writes(self, writes: Sequence[SideWrite]) -> None:
        """Status callbacks' inserts, committed by the status writer process (started at the
        first), off this process's GIL: consent_store.sqlite.status_process."""
        await opened(self._status_lane).write(writes)

    def _start_bulk_side_writes(self, writes: Sequence[SideWrite]) -> asyncio.Future[None]:
        return opened(self._status_lane).submit(writes)

    # -- settings ---------------------------------------------------------

    async def _checkpoint(self) -> None:
        """Copy the write-ahead log into the database file and empty it."""
        await opened(self._writer).checkpoint()

    # -- businesses and scripts --------------------------------------------

    # -- the consent log ---------------------------------------------------

    async def standing(self, phone: str, business: str) -> Standing | None:
        """The latest opt-in/opt-out of this phone for this business, from an index."""
        row = self._quick_read(STANDING_SQL, (phone, business))
        if row is _BUSY:
            row = await self._fetchone(STANDING_SQL, (phone, business))
        return standing_from_row(row)

    async def export_decisions(
        self,
        where: ExportFilter,
        on_snapshot: OnSnapshot | None = None,
    ) -> AsyncGenerator[DecisionRow, None]:
        """Every decision matching the filter, oldest first, streamed from its own connection.

        The rows come from one read snapshot and only from records up to its head (or up
        to record `where.through_seq`), recordings included: reading again through the same
        record gives the same rows however the log has grown since. `on_snapshot(seq,
        hash)` learns, before the first row, which record that is and its hash (the
        genesis hash for record 0, None if the log holds no such record).
        """
        clause, params = decision_filter(where)
        chunk_rows = 500
        # Each chunk is one statement whose rows SQLite joins into one string: the
        # connection's thread then runs the lookups without taking the GIL for every row,
        # so it reads the next chunk while the caller formats this one, on another core.
        chunk_sql = rows_sql(clause, limit=chunk_rows)
        decoder = RowDecoder()
        conn = await _connect(self.path)
        pending: asyncio.Future[Any] | None = None
        try:
            await conn.execute("BEGIN")  # one snapshot for the head and every chunk
            head_seq, head_hash = await export_bound(fetchone_on(conn), where.through_seq)
            if on_snapshot is not None:
                on_snapshot(head_seq, head_hash)

            def fetch(after: int) -> asyncio.Future[Any]:
                chunk_params = [head_seq, after, head_seq, *params]
                return asyncio.ensure_future(conn.execute_fetchall(chunk_sql, chunk_params))

            pending = fetch(0)
            while pending is not None:
                [(count, last_seq, chunk)] = await pending
                # Read the next chunk while this one is decoded and the caller works on it:
                # one turn of the event loop starts the task, handing the query to the thread.
                pending = fetch(last_seq) if count == chunk_rows else None
                await asyncio.sleep(0)
                for row, _ in decoder.decode(count, chunk):
                    yield row
        except aiosqlite.Error as exc:
            raise StoreUnavailable(f"could not read the consent store: {exc}") from exc
        finally:
            try:
                if pending is not None:
                    pending.cancel()
                    with contextlib.suppress(asyncio.CancelledError, aiosqlite.Error):
                        await pending
            finally:
                await conn.close()

    def export_csv_chunks(
        self,
        where: ExportFilter,
        on_snapshot: OnSnapshot | None = None,
    ) -> AsyncGenerator[CsvChunk, None]:
        """The CSV rows (no header) of `export_decisions`, built mostly by SQLite on two
        processes: exactly `consent_store.columns.render_csv`'s bytes for those rows (see
        consent_store.sqlite.export)."""
        return export_csv_chunks(self.path, where, on_snapshot)

    async def chain_rows(self) -> AsyncIterator[list[ChainRow]]:
        """All events in sequence order, in batches, from a connection of their own."""
        conn = await _connect(self.path)
        try:
            async with conn.execute(
                "SELECT seq, recorded_at, kind, idempotency_key, call_sid, business, subject,"
                " action, body, prev_hash, hash FROM events ORDER BY seq"
            ) as cur:
                while batch := await cur.fetchmany(_CHUNK):
                    yield [ChainRow(*row) for row in batch]
        finally:
            await conn.close()

    async def _anchors(self) -> tuple[dict[int, str], list[str]]:
        """Checkpoints from the database and the head file beside it."""
        anchors = {seq: digest for seq, digest in await self._fetchall("SELECT seq, hash FROM checkpoints")}
        warnings = []
        try:
            head = json.loads(self.head_file.read_text())
            anchors[int(head["seq"])] = str(head["hash"])
        except FileNotFoundError:
            if await self._fetchone("SELECT 1 FROM events LIMIT 1"):
                warnings.append(
                    f"no chain head file {self.head_file}: a deleted tail after the last "
                    "checkpoint cannot be detected"
                )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            warnings.append(f"chain head file {self.head_file} is unreadable ({exc})")
        return anchors, warnings

    async def reanchor_head_file(self) -> VerifyResult:
        """After a deliberate restore: verify against the checkpoints alone and, if intact,
        write the head file anew from the chain's head. Run it with the service stopped."""
        anchors = {seq: digest for seq, digest in await self._fetchall("SELECT seq, hash FROM checkpoints")}
        result = await asyncio.to_thread(verify_database, self.path, anchors, ())
        if result.intact:
            temporary = self.head_file.with_name(self.head_file.name + ".tmp")
            write_private_text(temporary, json.dumps({"seq": result.count, "hash": result.head}))
            temporary.replace(self.head_file)
        return result

    async def event_count(self) -> int:
        row = await self._fetchone("SELECT COALESCE(MAX(seq), 0) FROM events")
        return int(row[0])

    async def verify(self, progress: Callable[[int], None] | None = None) -> VerifyResult:
        """Re-compute the whole hash chain, streaming, through every checkpoint.

        `progress(records_checked)` is called from time to time, from another thread."""
        anchors, warnings = await self._anchors()
        try:
            # Off the event loop: one reader thread, or worker processes for long chains.
            return await asyncio.to_thread(
                functools.partial(verify_database, self.path, anchors, tuple(warnings), progress=progress)
            )
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"could not read the consent store: {exc}") from exc
