"""CSV exports straight from SQLite: SQL builds the finished lines, two processes read them.

`export_csv_chunks` yields the bytes of the CSV rows of every decision a filter names,
oldest first, in windows of WINDOW records. This process reads some windows (on its
aiosqlite thread, while the caller hashes and writes) and a worker process
(consent_store.sqlite.export_worker) the others, on a read transaction that sees the same
log. SQLite builds each line itself from SQL generated from consent_store.columns
(consent_store.sqlite.export_sql); the cells many rows share (business, action, message
types, digits, locale, script) come from a temporary table filled with cells rendered by
the columns' own CSV rules. A window holding any value that would need quoting or
neutralising, or a decision whose shared cells are not in the table yet, is rendered the
slow way, from DecisionRows, by `consent_store.columns.render_csv`: the bytes are always
exactly what it gives. Never writes the database (the table of cells lives in each
connection's temporary schema).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import sqlite3
import sys
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from consent_store.chain import GENESIS_HASH
from consent_store.columns import RECORD_HASH, CsvChunk, render_csv
from consent_store.decisions import FetchOne, OnSnapshot, export_bound, head_record
from consent_store.events import ExportFilter
from consent_store.exceptions import StoreUnavailable
from consent_store.queries import decision_filter
from consent_store.sqlite import export_worker as worker_protocol
from consent_store.sqlite.export_sql import (
    CELLS_INSERT,
    CELLS_TABLE,
    SEPARATORS,
    RowDecoder,
    lines_sql,
    rows_sql,
    shared_cells,
    shared_cells_key,
)
from consent_store.sqlite.writer import PRAGMAS

LOG = logging.getLogger(__name__)

WINDOW = 2000  # records (of any kind) one statement reads
IN_FLIGHT = 4  # windows queued on the connections at once: memory stays a few windows
READERS = 2  # processes reading windows: this one and a worker
_SNAPSHOT_TRIES = 20
_PIPE_BUFFER = 1 << 20  # bytes of the worker's frames read ahead (twice this at most)


async def _connect(path: Path) -> aiosqlite.Connection:
    try:
        conn = await aiosqlite.connect(path, isolation_level=None)
        for pragma in PRAGMAS:
            await conn.execute(pragma)
    except Exception as exc:
        raise StoreUnavailable(f"cannot open SQLite database {path}: {exc}") from exc
    return conn


def fetchone_on(conn: aiosqlite.Connection) -> FetchOne:
    """`conn`'s first row of a statement (None if none), read inside its open transaction."""

    async def fetchone(sql: str, params: Sequence[Any]) -> Any:
        return next(iter(await conn.execute_fetchall(sql, params)), None)

    return fetchone


class _Worker:
    """The second process (consent_store.sqlite.export_worker) and its end of the pipes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        assert process.stdin is not None and process.stdout is not None
        self.stdin, self.stdout = process.stdin, process.stdout

    @classmethod
    async def start(cls, path: Path, lines: str, params: Sequence[Any]) -> _Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",  # the standard library only: not this package's directory, no PYTHON* settings
            worker_protocol.__file__,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=_PIPE_BUFFER,  # read on while this process works on its own windows
        )
        worker = cls(process)
        task = {
            "path": str(path),
            "genesis": GENESIS_HASH,
            "pragmas": [p for p in PRAGMAS if "journal_mode" not in p],
            "cells_table": CELLS_TABLE,
            "cells_insert": CELLS_INSERT,
            "sql": lines,
            "params": list(params),
            "window": WINDOW,
            "separators": SEPARATORS,
        }
        worker.stdin.write(json.dumps(task).encode() + b"\n")
        return worker

    async def head(self) -> tuple[int, str]:
        seq, digest = worker_protocol.HEAD.unpack(await self.stdout.readexactly(worker_protocol.HEAD.size))
        return int(seq), digest.decode().strip()

    def say(self, line: bytes) -> None:
        self.stdin.write(line + b"\n")

    async def window(self, start: int) -> tuple[int, bool, bytes]:
        frame = await self.stdout.readexactly(worker_protocol.FRAME.size)
        found, count, is_plain, size = worker_protocol.FRAME.unpack(frame)
        if found != start:
            raise StoreUnavailable(f"the export's second reader sent window {found}, not {start}")
        return count, bool(is_plain), await self.stdout.readexactly(size)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


async def _open_snapshot(
    conn: aiosqlite.Connection, worker: _Worker | None
) -> tuple[tuple[int, str], _Worker | None]:
    """A read transaction on `conn` and its head record; the worker waiting on one that
    sees the same log (or no worker: then call `_go` with None).

    Every change an export can see (a decision, a recording, an erased phone, a business)
    appends a record in the same transaction, so two transactions that see the same head
    record see the same rows."""
    for _ in range(_SNAPSHOT_TRIES):
        if worker is None:
            break
        theirs = await worker.head()
        await conn.execute("BEGIN")
        ours = await head_record(fetchone_on(conn))
        if ours == theirs:
            return ours, worker
        await conn.execute("COMMIT")
        worker.say(b"again")
    if worker is not None:
        LOG.info("the log grew while the export started: reading CSV on one process")
        await worker.stop()
    await conn.execute("BEGIN")
    return await head_record(fetchone_on(conn)), None


async def export_csv_chunks(
    path: Path,
    where: ExportFilter,
    on_snapshot: OnSnapshot | None = None,
) -> AsyncGenerator[CsvChunk, None]:
    """The CSV rows (no header) of every decision matching the filter, oldest first.

    From one snapshot and only records up to its head (or record `where.through_seq`), as
    `SQLiteStore.export_decisions`; `on_snapshot(seq, hash)` learns, before the first
    chunk, which record that is and its hash."""
    clause, params = decision_filter(where)
    lines = lines_sql(clause)
    rows_query = rows_sql(clause)
    conn = await _connect(path)
    worker: _Worker | None = None
    pending: collections.deque[asyncio.Future[Any]] = collections.deque()
    try:
        await conn.execute(CELLS_TABLE)
        if READERS > 1:
            try:
                worker = await _Worker.start(path, lines, params)
            except OSError as exc:  # e.g. no processes left: one process reads it all
                LOG.warning("cannot start the CSV export's second reader (%s): reading on one process", exc)
        head, worker = await _open_snapshot(conn, worker)
        head_seq, head_hash = await export_bound(fetchone_on(conn), where.through_seq, head)
        last = min(head_seq, head[0])  # the last record read: none exists after the head
        if worker is not None:
            worker.say(f"go {last}".encode())
        if on_snapshot is not None:
            on_snapshot(head_seq, head_hash)
        cached: set[tuple[Any, ...]] = set()
        decoder = RowDecoder()
        starts = range(0, last, WINDOW)
        owned = worker_protocol.worker_owns if worker is not None else lambda number: False
        ours = (start for number, start in enumerate(starts) if not owned(number))

        def fetch_next() -> None:
            start = next(ours, None)
            if start is not None:
                args = [last, start, min(start + WINDOW, last), *params]
                pending.append(asyncio.ensure_future(conn.execute_fetchall(lines, args)))

        async def slow_way(start: int) -> CsvChunk:
            args = [last, start, min(start + WINDOW, last), *params]
            [(count, _, chunk)] = await conn.execute_fetchall(rows_query, args)
            decoded = decoder.decode(count, chunk)
            new = []
            for row, shared_key in decoded:
                key = shared_cells_key(row, shared_key)
                if key not in cached:
                    cached.add(key)
                    shared = shared_cells(row, shared_key)
                    if shared is not None:
                        new.append(shared)
            if new:
                await conn.executemany(CELLS_INSERT, new)
                if worker is not None:
                    worker.say(json.dumps(new).encode())
            rows = [row for row, _ in decoded]
            return CsvChunk(render_csv(rows), len(rows), rows[0].record_hash, rows[-1].record_hash)

        for _ in range(IN_FLIGHT):
            fetch_next()
        for number, start in enumerate(starts):
            if worker is not None and owned(number):
                count, is_plain, data = await worker.window(start)
            else:
                [found] = await pending.popleft()
                fetch_next()
                await asyncio.sleep(0)  # hand the next window to its thread before working on this one
                count, is_plain, data = worker_protocol.window_result(found, SEPARATORS)
            if not count:
                continue
            if is_plain:
                yield CsvChunk(data, count, *_first_and_last_hash(data))
            else:
                yield await slow_way(start)
    except (aiosqlite.Error, sqlite3.Error) as exc:
        raise StoreUnavailable(f"could not read the consent store: {exc}") from exc
    except asyncio.IncompleteReadError as exc:
        raise StoreUnavailable("the export's second reader stopped: run the export again") from exc
    finally:
        try:
            for future in pending:
                future.cancel()
            for future in pending:
                with contextlib.suppress(asyncio.CancelledError, aiosqlite.Error):
                    await future
            if worker is not None:
                await worker.stop()
        finally:
            await conn.close()


def _first_and_last_hash(data: bytes) -> tuple[str, str]:
    """The record hashes in the first and last line of plain CSV rows (whose every comma
    separates two cells)."""
    first_line = data[: data.index(b"\r\n")]
    last_line = data[data.rfind(b"\n", 0, len(data) - 1) + 1 : -2]
    return first_line.split(b",")[RECORD_HASH].decode(), last_line.split(b",")[RECORD_HASH].decode()
