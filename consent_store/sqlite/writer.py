"""The single writer: one task, one connection, events committed in groups.

Every append to the SQLite log goes through this queue (`group_commit`), to one
connection on one thread. The writer drains whatever is waiting (up to MAX_BATCH),
writes it in one transaction and commits once, so many concurrent calls share one fsync. Each caller awaits
its own future, which resolves only after COMMIT returned. It never updates
or deletes an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from consent_store.chain import GENESIS_HASH, chain_event, text_sha256
from consent_store.events import StoredEvent
from consent_store.exceptions import StoreUnavailable
from consent_store.group_commit import Group, GroupCommitQueue, Outcome
from consent_store.sqlite.side_writes import side_writes_each, side_writes_group
from consent_store.sqlite.status_process import open_lock, write_transaction
from consent_store.writing import CHECKPOINT_EVERY, MAX_BATCH, subject_commitment, utc_now

LOG = logging.getLogger(__name__)

# The head file is rewritten at most this often (seconds), and on close; it may lag
# the database after a crash, which verify accepts (the chain must only reach it).
HEAD_FILE_INTERVAL = 0.2
# The write-ahead log is copied into the database by a background checkpoint this often,
# off the writer's thread, so a commit never pays for a checkpoint; the writer's own
# automatic checkpoint stays as a safety net at a much larger size (pages).
CHECKPOINT_SECONDS = 1.0
WRITER_AUTOCHECKPOINT_PAGES = 20_000
T = TypeVar("T")
PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA busy_timeout = 10000",
    "PRAGMA foreign_keys = ON",
    # Deleted content (an erased phone number) is overwritten, not left in free pages.
    "PRAGMA secure_delete = ON",
)


# The database, its WAL and SHM (SQLite gives them the database file's mode) and the head
# file hold phone numbers and evidence: readable by the service's own user only.
PRIVATE_FILE_MODE = 0o600


def create_private_file(path: Path) -> None:
    """Create an empty file readable by its owner only, unless it exists (left as it is)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))


def write_private_text(path: Path, text: str) -> None:
    """Write a file readable by its owner only (an older file's wider mode is narrowed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    with open(fd, "w", encoding="utf-8") as out:
        os.fchmod(fd, PRIVATE_FILE_MODE)
        out.write(text)


class SQLiteWriter(GroupCommitQueue):
    """Owns the only writing connection (on its own thread) and the in-memory chain head.

    A batch is written by one call on the writer thread, so a group of events
    costs one thread hop and one fsync, not several of each.
    """

    def __init__(
        self,
        path: Path,
        head_file: Path | None = None,
        max_batch: int = MAX_BATCH,
        adopt_missing_head_file: bool = False,
    ) -> None:
        super().__init__(max_batch)
        self._path = path
        self._adopt_missing_head_file = adopt_missing_head_file
        self._head_file = head_file
        self._conn: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="consent-writer")
        self._checkpointer: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._head_seq = 0
        self._head_hash = GENESIS_HASH
        self._head_file_written = 0.0
        self._head_file_seq = 0
        self._head_file_frozen = False
        self._lock_fd: int | None = None

    async def _on_thread(self, work: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work, *args)

    def _open_sync(self) -> None:
        self._conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            self._lock_fd = open_lock(self._path)
            for pragma in PRAGMAS:
                self._conn.execute(pragma)
            self._conn.execute(f"PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT_PAGES}")
            self._load_head_sync()
        except sqlite3.Error:
            self._conn.close()
            self._conn = None
            raise
        self._check_head_file_sync()
        self._head_file_seq = self._head_seq if self._head_file is None or self._head_file.exists() else -1

    def _check_head_file_sync(self) -> None:
        """Never overwrite a head file that shows the database lost records: freeze it instead."""
        if self._head_file is None:
            return
        problem = None
        try:
            recorded = json.loads(self._head_file.read_text())
            seq, digest = int(recorded["seq"]), str(recorded["hash"])
            row = self._db.execute("SELECT hash FROM events WHERE seq = ?", (seq,)).fetchone()
            if seq > 0 and (row is None or row[0] != digest):
                problem = f"it records record {seq} which the database does not hold as recorded"
        except FileNotFoundError:
            if self._head_seq > 0 and not self._adopt_missing_head_file:
                problem = "it is missing while the database holds records"
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problem = f"it is unreadable ({exc})"
        if problem is not None:
            LOG.error(
                "chain head file %s is left as it is and no longer updated: %s; run 'ivr verify'",
                self._head_file,
                problem,
            )
            self._head_file_frozen = True

    def _close_sync(self) -> None:
        if self._conn is not None:
            if self._head_seq != self._head_file_seq:
                self._write_head_file()
            self._conn.close()
            self._conn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def start(self) -> None:
        try:
            await self._on_thread(self._open_sync)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open SQLite database {self._path} for writing: {exc}") from exc
        self._start_queue()
        self._checkpointer = asyncio.create_task(self._checkpoint_loop(), name="consent-store-checkpoint")

    async def _checkpoint_loop(self) -> None:
        """PASSIVE checkpoints on a connection and thread of their own: never block a commit.

        Stopped by an event, never cancelled, so the connection is not closed while a
        checkpoint still runs on it."""
        conn = await asyncio.to_thread(sqlite3.connect, self._path, check_same_thread=False)
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), CHECKPOINT_SECONDS)
                if self._stopping.is_set():
                    return
                try:
                    await asyncio.to_thread(lambda: conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall())
                except sqlite3.Error as exc:
                    LOG.warning("background checkpoint failed: %s", exc)
        finally:
            await asyncio.to_thread(conn.close)

    async def stop(self) -> None:
        if self._checkpointer is not None:
            self._stopping.set()
            await self._checkpointer
            self._checkpointer = None
        await self._stop_queue()
        await self._on_thread(self._close_sync)
        self._thread.shutdown(wait=True)

    async def checkpoint(self) -> None:
        """Checkpoint and truncate the WAL, on the writer thread (between batches)."""
        await self._on_thread(lambda: self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())

    async def _write_group(self, group: Group) -> list[Outcome]:
        return await self._on_thread(self._commit_sync, group)

    # -- everything below runs on the writer thread --------------------------

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreUnavailable("the consent store writer is closed")
        return self._conn

    def _load_head_sync(self) -> None:
        row = self._db.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        self._head_seq, self._head_hash = (int(row[0]), str(row[1])) if row else (0, GENESIS_HASH)

    def _commit_sync(self, batch: Group) -> list[Outcome]:
        head = (self._head_seq, self._head_hash)
        try:
            # In the writers' turn (the status writer process takes it too: status_process.py).
            with write_transaction(self._db, self._lock_fd):
                # Another process (an `ivr` command beside the server) may have appended since: the
                # head is re-read under the write lock, so the chain stays one line whoever writes.
                self._load_head_sync()
                results = self._write_sync(batch)
        except BaseException:
            self._head_seq, self._head_hash = head
            with contextlib.suppress(Exception):
                self._load_head_sync()
            raise
        now = time.monotonic()
        if self._head_seq != self._head_file_seq and now - self._head_file_written >= HEAD_FILE_INTERVAL:
            self._write_head_file()
            self._head_file_written = now
        return results

    def _write_head_file(self) -> None:
        """Keep the chain head outside the database, so a truncated tail is noticed."""
        if self._head_file is None or self._head_file_frozen:
            return
        temporary = self._head_file.with_name(self._head_file.name + ".tmp")
        try:
            write_private_text(temporary, json.dumps({"seq": self._head_seq, "hash": self._head_hash}))
            os.replace(temporary, self._head_file)
            self._head_file_seq = self._head_seq
        except OSError as exc:
            LOG.warning("could not update the chain head file %s: %s", self._head_file, exc)

    def _write_sync(self, batch: Group) -> list[Outcome]:
        events = [event for event, _ in batch if event is not None]
        if not events:  # side writes alone (status callbacks): together if they can be
            return list(side_writes_group(self._db, [writes for _, writes in batch]))
        existing = self._existing_sync(list({e.idempotency_key for e in events}))
        subjects = self._subjects_sync({e.phone for e in events if e.phone})
        results: list[Outcome] = []
        rows: list[tuple[Any, ...]] = []
        texts: dict[str, str] = {}
        for event, side_writes in batch:
            known = existing.get(event.idempotency_key) if event is not None else None
            if known is not None:
                results.append(known)
                continue
            failure = side_writes_each(self._db, side_writes)
            if failure is not None or event is None:
                results.append(failure)
                continue
            seq, prev_hash, recorded_at = self._head_seq + 1, self._head_hash, utc_now()
            subject = subjects[event.phone] if event.phone else None
            row = chain_event(event, seq, prev_hash, recorded_at, subject)
            rows.append(row)
            self._head_seq, self._head_hash = seq, row.hash
            results.append(StoredEvent(seq, recorded_at, event.kind, row.body, prev_hash, row.hash))
            existing[event.idempotency_key] = StoredEvent(
                seq, recorded_at, event.kind, row.body, prev_hash, row.hash, duplicate=True
            )
            if event.spoken_text is not None:
                texts[text_sha256(event.spoken_text)] = event.spoken_text
        if rows:
            self._db.executemany(
                "INSERT INTO events (seq, recorded_at, kind, idempotency_key, call_sid, business,"
                " subject, action, body, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            if (rows[0][0] - 1) // CHECKPOINT_EVERY != rows[-1][0] // CHECKPOINT_EVERY:
                self._db.execute(
                    "INSERT INTO checkpoints (seq, hash, recorded_at) VALUES (?, ?, ?)",
                    (rows[-1][0], rows[-1][10], rows[-1][1]),
                )
        if texts:
            self._db.executemany(
                "INSERT OR IGNORE INTO spoken_texts (sha256, text) VALUES (?, ?)", list(texts.items())
            )
        return results

    def _existing_sync(self, keys: list[str]) -> dict[str, StoredEvent]:
        found: dict[str, StoredEvent] = {}
        if not keys:
            return found
        marks = ",".join("?" * len(keys))
        sql = (
            "SELECT idempotency_key, seq, recorded_at, kind, body, prev_hash, hash"
            f" FROM events WHERE idempotency_key IN ({marks})"
        )
        for key, seq, recorded_at, kind, body, prev_hash, digest in self._db.execute(sql, keys):
            found[key] = StoredEvent(seq, recorded_at, kind, body, prev_hash, digest, duplicate=True)
        return found

    def _subjects_sync(self, phones: set[str | None]) -> dict[str, str]:
        """Salted commitments for these phones, creating the missing ones."""
        wanted = sorted(p for p in phones if p)
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        found: dict[str, str] = dict(
            self._db.execute(f"SELECT phone, subject FROM subjects WHERE phone IN ({marks})", wanted)
        )
        new_rows = []
        for phone in wanted:
            if phone not in found:
                salt = secrets.token_hex(16)
                found[phone] = subject_commitment(salt, phone)
                new_rows.append((found[phone], phone, salt))
        if new_rows:
            self._db.executemany("INSERT INTO subjects (subject, phone, salt) VALUES (?, ?, ?)", new_rows)
        return found
