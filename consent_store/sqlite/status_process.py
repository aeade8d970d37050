"""The status lane: status callbacks (side writes alone, millions a day) committed by a process of their own.

A status callback's two inserts need no chain head and no other write's outcome, so on SQLite
they need not share the store's writer thread. In the server's process, that thread's work
(binding the rows, and SQLite itself between the statements that release the GIL) takes the
GIL from the event loop at every system call: the status webhook ran at a third of the bare
floor's rate with the server's one core busy and the machine's second core idle
(docs/performance.md). This child process owns a connection of its own to the same file and
commits there, on the other core, with nothing to share with the event loop but a pipe.

Parent to child (stdin), a frame: 4-byte big-endian length, then `marshal` of
`[(item_id, [(sql, params), ...]), ...]`. Child to parent (stdout), one frame per transaction:
`[(item_id, kind, text), ...]` (kind OK, CONFLICT: that item's statements clashed and none of
them was kept, UNAVAILABLE: the transaction failed and nothing of it was kept). The child reads
every frame waiting in the pipe and commits them in one transaction (one fsync) before it
answers, so an acknowledged status is on disk. Both the child and the store's writer take the
SQLite write lock with BEGIN IMMEDIATE; `fcntl.flock` on the lane's lock file hands the lock
over between them in turn, so a flood of statuses never starves a caller's consent (the busy
timeout alone would let the writer sleep and poll while the child commits back to back).

When stdin closes, the child commits what it read and exits. If it dies, every status in
flight gets StoreUnavailable (the webhook's 503: not known to be kept) and the next status
starts a new one, at once after a child that had answered, after a growing wait (RETRY_SECONDS)
after one that never did.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import logging
import marshal
import os
import sqlite3
import struct
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from consent_store.exceptions import ConflictingWrite, StoreUnavailable
from consent_store.group_commit import SideWrite
from consent_store.sqlite.side_writes import side_writes_group

LOG = logging.getLogger(__name__)

# The child runs `python -m` this module (not imported by the package, so runpy does not warn).
CHILD_MODULE = "consent_store.sqlite.status_child"
OK, CONFLICT, UNAVAILABLE = 0, 1, 2
_LENGTH = struct.Struct(">I")
# Frames sent to the child and not yet answered, at most (see StatusWriterProcess._flush).
FRAMES_IN_FLIGHT = 2
# The most items one transaction of the child takes (one fsync for all of them).
MAX_ITEMS = 2048
# A frame longer than this is not one the parent sends: the child stops rather than allocate it.
MAX_FRAME = 64 << 20
STOP_SECONDS = 10.0
# After a child stops before answering anything (it cannot start: a broken install, a database it
# cannot open), the next is started no sooner than this, doubled for each such stop in a row up to
# RETRY_MAX_SECONDS; meanwhile statuses fail at once (503) instead of each starting a process.
RETRY_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0


def lock_path(database: Path) -> Path:
    """The lock file beside the database that orders the writers' transactions."""
    return database.with_name(database.name + ".writelock")


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection, lock_fd: int | None) -> Iterator[None]:
    """One write transaction (BEGIN IMMEDIATE ... COMMIT, ROLLBACK on any error) inside the
    writers' turn: an exclusive flock on the lock file, when there is one."""
    if lock_fd is not None:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
    finally:
        if lock_fd is not None:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)


def open_lock(database: Path) -> int | None:
    """The lock file's descriptor (created readable by the owner only), or None where it cannot
    be created (a folder the service may not write to): the writers then take turns through
    SQLite's busy timeout alone."""
    try:
        return os.open(lock_path(database), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        LOG.warning(
            "no writers' lock file %s (%s): writers wait on SQLite's busy timeout", lock_path(database), exc
        )
        return None


# -- what both ends share ------------------------------------------------------


def frames(buffer: bytearray) -> Iterator[Any]:
    """Whole frames at the front of `buffer`, removed from it."""
    while len(buffer) >= _LENGTH.size:
        (length,) = _LENGTH.unpack_from(buffer)
        if length > MAX_FRAME:
            raise ValueError(f"a frame of {length} bytes")
        if len(buffer) < _LENGTH.size + length:
            return
        payload = bytes(buffer[_LENGTH.size : _LENGTH.size + length])
        del buffer[: _LENGTH.size + length]
        yield marshal.loads(payload)


def frame(payload: Any) -> bytes:
    data = marshal.dumps(payload)
    return _LENGTH.pack(len(data)) + data


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def commit_items(
    conn: sqlite3.Connection, items: Sequence[tuple[int, Sequence[SideWrite]]], lock_fd: int | None
) -> list[tuple[int, int, str]]:
    """Commit these items' side writes in one transaction: each item's answer."""
    try:
        with write_transaction(conn, lock_fd):
            outcomes = side_writes_group(conn, [writes for _, writes in items])
    except sqlite3.Error as exc:
        return [(item_id, UNAVAILABLE, f"could not write: {exc}") for item_id, _ in items]
    return [
        (item_id, OK, "") if outcome is None else (item_id, CONFLICT, str(outcome))
        for (item_id, _), outcome in zip(items, outcomes, strict=True)
    ]


# -- the parent ---------------------------------------------------------------


def _child_environment() -> dict[str, str]:
    """The parent's environment, with this package's folder first on the child's import path
    (the parent may run from a source tree that is not installed)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(part for part in (root, env.get("PYTHONPATH")) if part)
    return env


class StatusWriterProcess:
    """The parent's end: `write(writes)` resolves once the child committed them (or raises)."""

    def __init__(self, database: Path) -> None:
        # Absolute: the parent may change its working directory before the child starts.
        self._database = database.absolute()
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        # The child while its answers are read: the one to send to (None: start one first).
        self._live: asyncio.subprocess.Process | None = None
        self._starting: asyncio.Lock | None = None
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._outbox: list[tuple[int, Sequence[SideWrite]]] = []
        self._flush_scheduled = False
        # The last item of each frame sent to the child and not yet answered, oldest first.
        self._in_flight: collections.deque[int] = collections.deque()
        self._next_id = 0
        self.started = 0  # processes started, for tests and logs
        self.retry_seconds = RETRY_SECONDS
        # Children in a row that stopped before answering anything, and when the next may start.
        self._failed_starts = 0
        self._retry_at = 0.0

    async def write(self, writes: Sequence[SideWrite]) -> None:
        """Commit these statements in the child; StoreUnavailable or ConflictingWrite if not kept."""
        await self.submit(writes)

    def submit(self, writes: Sequence[SideWrite]) -> asyncio.Future[None]:
        """`write` without a coroutine while the child runs (the status webhook's fast path): a
        future that resolves once the child committed them, or fails as `write` raises."""
        process = self._live
        if process is None:
            return asyncio.ensure_future(self._start_and_write(writes))
        return self._queue(process, writes)

    async def _start_and_write(self, writes: Sequence[SideWrite]) -> None:
        await self._queue(await self._start(), writes)

    def _queue(
        self, process: asyncio.subprocess.Process, writes: Sequence[SideWrite]
    ) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        self._next_id += 1
        future: asyncio.Future[None] = loop.create_future()
        self._waiting[self._next_id] = future
        self._outbox.append((self._next_id, list(writes)))
        if not self._flush_scheduled and len(self._in_flight) < FRAMES_IN_FLIGHT:
            self._flush_scheduled = True
            loop.call_soon(self._flush, process)
        return future

    def _flush(self, process: asyncio.subprocess.Process) -> None:
        """Everything queued since the last frame, to the child in one frame.

        At most FRAMES_IN_FLIGHT frames unanswered: what arrives meanwhile waits for an answer and
        goes as the next frame (group commit: the busier, the larger the groups, one pipe write
        a group and not one a turn of the event loop), while the child always has the next
        frame waiting when it finishes a commit."""
        self._flush_scheduled = False
        outbox, self._outbox = self._outbox, []
        if not outbox:
            return
        if process is not self._live or process.stdin is None or process.stdin.is_closing():
            # It stopped since these were queued: no answer can come (its reader settled the rest).
            self._fail([item_id for item_id, _ in outbox], "the status writer process is not running")
            return
        self._in_flight.append(outbox[-1][0])
        process.stdin.write(frame(outbox))

    async def _start(self) -> asyncio.subprocess.Process:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._live is not None:
                return self._live
            wait = self._retry_at - asyncio.get_running_loop().time()
            if wait > 0:
                raise StoreUnavailable(
                    f"the status writer process stopped before answering {self._failed_starts} time(s)"
                    f" in a row (its error is in the log): next start in {wait:.1f} s"
                )
            if self._process is not None:
                await self._reap(self._process)
            try:
                started = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    CHILD_MODULE,
                    str(self._database),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    env=_child_environment(),
                )
            except OSError as exc:
                raise StoreUnavailable(f"cannot start the status writer process: {exc}") from exc
            self.started += 1
            if self.started > 1:
                LOG.warning("status writer process restarted (%d so far)", self.started - 1)
            self._process = self._live = started
            self._reader = asyncio.create_task(self._read_answers(started), name="status-writer-answers")
            return started

    async def _read_answers(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        buffer = bytearray()
        answered = False
        try:
            while chunk := await process.stdout.read(1 << 20):
                buffer += chunk
                for answers in frames(buffer):
                    if not answered:  # it works: a later stop waits the first wait again
                        answered, self._failed_starts = True, 0
                    self._settle(answers)
                    answered = max(item_id for item_id, _, _ in answers)
                    while self._in_flight and self._in_flight[0] <= answered:
                        self._in_flight.popleft()
                if len(self._in_flight) < FRAMES_IN_FLIGHT and self._outbox and not self._flush_scheduled:
                    self._flush(process)
        except (OSError, ValueError) as exc:
            LOG.error("status writer process: unreadable answer: %s", exc)
        finally:
            # Whatever is still waiting was not answered: not known to be kept.
            if self._live is process:
                self._live = None
                self._note_stop(answered)
            self._in_flight.clear()
            self._outbox = []
            self._fail(list(self._waiting), "the status writer process stopped before it answered")

    def _note_stop(self, answered: bool) -> None:
        """A child stopped on its own: one that never answered delays the next start."""
        if answered:
            return
        self._failed_starts += 1
        wait = min(self.retry_seconds * 2 ** (self._failed_starts - 1), RETRY_MAX_SECONDS)
        self._retry_at = asyncio.get_running_loop().time() + wait
        LOG.error(
            "status writer process stopped before answering (%d in a row): next start in %.1f s",
            self._failed_starts,
            wait,
        )

    def _settle(self, answers: list[tuple[int, int, str]]) -> None:
        for item_id, kind, text in answers:
            future = self._waiting.pop(item_id, None)
            if future is None or future.done():
                continue
            if kind == OK:
                future.set_result(None)
            elif kind == CONFLICT:
                future.set_exception(ConflictingWrite(text))
            else:
                future.set_exception(StoreUnavailable(text))

    def _fail(self, item_ids: list[int], reason: str) -> None:
        for item_id in item_ids:
            future = self._waiting.pop(item_id, None)
            if future is not None and not future.done():
                future.set_exception(StoreUnavailable(reason))

    async def _reap(self, process: asyncio.subprocess.Process) -> None:
        if process.stdin is not None and not process.stdin.is_closing():
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), STOP_SECONDS)
        except TimeoutError:
            LOG.error("status writer process did not stop in %.0f s: killed", STOP_SECONDS)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    async def stop(self) -> None:
        """Let the child commit what it was sent, then stop it."""
        process, reader = self._process, self._reader
        if process is None:
            return
        if self._outbox:
            self._flush(process)
        self._process = self._reader = self._live = None
        await self._reap(process)
        if reader is not None:
            await reader
