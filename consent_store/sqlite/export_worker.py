"""The second reader of a CSV export: a process that runs some windows' SQL for the first.

Two threads of one process running SQLite statements slow each other down (1.5x the CPU
for 1.3x the speed on 2 cores: SQLite's process-wide locks); two processes do not. Run
as a script (`python -I .../sqlite/export_worker.py`: the standard library only, so it
starts in milliseconds), it reads its task as one JSON line on standard input, opens a
read transaction, reports its head record and waits for "go SEQ" (the exporter goes on
only if both processes see the same head, so the same rows; SEQ is the last record
read). It then writes one frame per window it owns on standard output, and takes rows
for its table of shared cells from standard input as JSON lines. Never writes the
database.

Also the window rules both processes share: which windows the worker owns, and whether
SQL's lines can be used as they are.
"""

from __future__ import annotations

import json
import os
import queue
import select
import sqlite3
import struct
import sys
import threading
from typing import Any, BinaryIO

# A window's frame: its first record, its rows, whether they are plain, the bytes' length.
FRAME = struct.Struct("<qqqq")
HEAD = struct.Struct("<q64s")
END = -1
# Of every nine windows the worker reads five: the exporter also hashes and writes them all.
WORKER_SHARE = (False, True, False, True, False, True, False, True, True)


def worker_owns(window_number: int) -> bool:
    return WORKER_SHARE[window_number % len(WORKER_SHARE)]


def plain(data: bytes, rows: int, commas: int, quotes: int, separators: int) -> bool:
    """True if no value SQL wrote as it is holds a comma, quote, CR, LF or NUL.

    Such lines are what `consent_store.columns.csv_line` writes too: it quotes a cell only
    for those characters. `commas` and `quotes` are those inside the shared cells (quoted
    there by the columns' rules); `separators` the commas between a line's cells. Counting
    bytes in C is far faster than SQLite checking each cell."""
    return (
        b"\x00" not in data
        and (data.count(b'"') == quotes if quotes else b'"' not in data)
        and data.count(b"\n") == rows
        and data.count(b"\r") == rows
        and data.count(b",") == separators * rows + commas
    )


def window_result(row: tuple[Any, ...], separators: int) -> tuple[int, bool, bytes]:
    """A `lines_sql` result as (rows, plain, bytes)."""
    count, vouched, commas, quotes, data = row
    data = bytes(data or b"")
    is_plain = bool(count) and vouched == count and plain(data, count, int(commas), int(quotes), separators)
    return count, is_plain, data


class _Commands:
    """Standard input, a line at a time, read without blocking between windows.

    One read may bring several lines (a "go" and the first cells right behind it):
    what is not asked for yet stays queued."""

    def __init__(self) -> None:
        self._fd = sys.stdin.fileno()
        self._pending = b""
        self._queued: list[bytes] = []

    def _read(self, wait: bool) -> None:
        while True:
            ready, _, _ = select.select([self._fd], [], [], None if wait and not self._queued else 0)
            if not ready:
                return
            data = os.read(self._fd, 1 << 16)
            if not data:
                raise SystemExit(0)  # the exporter is gone
            *complete, self._pending = (self._pending + data).split(b"\n")
            self._queued += complete

    def next(self) -> bytes:
        """The next line, waiting for it."""
        self._read(wait=True)
        return self._queued.pop(0)

    def ready(self) -> list[bytes]:
        """Every line that has arrived, without waiting."""
        self._read(wait=False)
        found, self._queued = self._queued, []
        return found


class _FrameWriter:
    """Frames written by a thread of their own, a few queued: the next window's SQL runs
    while the exporter is still busy with its own windows and not reading the pipe."""

    def __init__(self, out: BinaryIO, queued: int = 4) -> None:
        self._out = out
        self._frames: queue.Queue[bytes | None] = queue.Queue(queued)
        self._thread = threading.Thread(target=self._write, daemon=True)
        self._thread.start()

    def _write(self) -> None:
        try:
            while (frame := self._frames.get()) is not None:
                self._out.write(frame)
                self._out.flush()
        except BrokenPipeError:
            os._exit(0)  # the exporter stopped reading: it has gone

    def frame(self, start: int, count: int, is_plain: bool, data: bytes) -> None:
        self._frames.put(FRAME.pack(start, count, is_plain, len(data)) + data)

    def close(self) -> None:
        self.frame(END, 0, False, b"")
        self._frames.put(None)
        self._thread.join()


def run(task: dict[str, Any], out: BinaryIO) -> None:
    conn = sqlite3.connect(task["path"], isolation_level=None)
    for pragma in task["pragmas"]:
        conn.execute(pragma)
    conn.execute(task["cells_table"])
    commands = _Commands()
    while True:
        conn.execute("BEGIN")
        found = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        seq, digest = found or (0, task["genesis"])
        out.write(HEAD.pack(seq, str(digest).encode().ljust(64)))
        out.flush()
        command = commands.next()
        if command.startswith(b"go "):
            break
        conn.execute("COMMIT")  # "again": the exporter saw another head; take a new snapshot
    head = int(command.split()[1])  # the last record to read: the head, or an older one
    window, params = task["window"], task["params"]
    frames = _FrameWriter(out)
    for number, start in enumerate(range(0, head, window)):
        if not worker_owns(number):
            continue
        for line in commands.ready():
            conn.executemany(task["cells_insert"], json.loads(line))
        row = conn.execute(task["sql"], [head, start, min(start + window, head), *params]).fetchone()
        frames.frame(start, *window_result(row, task["separators"]))
    frames.close()
    conn.close()


def main() -> int:
    task = json.loads(sys.stdin.buffer.readline())
    try:
        run(task, sys.stdout.buffer)
    except BrokenPipeError:
        pass  # the exporter stopped reading: it has gone
    return 0


if __name__ == "__main__":
    sys.exit(main())
