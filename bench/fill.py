"""Fill a consent store with a long, correctly chained log fast, for the verify benchmark.

`record_decision` commits through the single writer, far too slowly to build a
million events. `fill_store` writes the same rows directly with sqlite3:

- the schema comes from the store itself (a `SQLiteStore` is opened, which
  migrates it), and the businesses are created through `add_business`, so the
  chain starts with their real "business" events and scripts;
- each decision comes from `ConsentDecision.to_event()`; its body is
  built by `chain_event`, exactly as the writer builds it (body and hash);
- each new phone gets a `subjects` row with a random salt and
  `subject_commitment(salt, phone)`; a repeat caller reuses its subject;
- the spoken texts go to `spoken_texts`, keyed by their SHA-256;
- the events are grouped as the writer would have committed them (`batch` per
  commit) and a `checkpoints` row is written for every group that passes a
  multiple of CHECKPOINT_EVERY, at the group's last event, as the writer does;
- the `.chainhead` file beside the database names the last event.

The result passes `SQLiteStore.verify()`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import random
import sqlite3
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.workload import BUSINESSES, Workload, add_businesses
from consent_store import Business, SQLiteStore
from consent_store.chain import chain_event, text_sha256
from consent_store.writing import CHECKPOINT_EVERY, subject_commitment

_INSERT_EVENT = (
    "INSERT INTO events (seq, recorded_at, kind, idempotency_key, call_sid, business,"
    " subject, action, body, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)
_CHUNK = 20_000  # rows handed to executemany at a time


@dataclass(frozen=True)
class FillResult:
    events: int  # events in the chain, business events included
    head_seq: int
    head_hash: str
    checkpoints: int
    subjects: int
    seconds: float


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    """asyncio.run, also from code that already runs inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coroutine)
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coroutine).result()


async def _create(path: Path, businesses: Sequence[Business]) -> None:
    async with SQLiteStore(path) as store:
        await add_businesses(store, businesses)


class _Clock:
    """Wall-clock `recorded_at` in the writer's format, never going backwards, cheaply."""

    def __init__(self) -> None:
        self._last_us = 0
        self._second = -1
        self._prefix = ""

    def now(self) -> str:
        us = max(time.time_ns() // 1000, self._last_us)
        self._last_us = us
        second, micro = divmod(us, 1_000_000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{micro:06d}Z"


def fill_store(
    path: Path,
    n: int,
    businesses: Sequence[Business] = BUSINESSES,
    *,
    seed: int = 0,
    batch: int = 50,
) -> FillResult:
    """Create a store at `path` holding `n` chained events: the businesses, then decisions.

    `path` must not hold any events yet. `batch` is the group-commit size the
    checkpoints are placed for.
    """
    if not businesses:
        raise ValueError("fill_store needs at least one business for the decisions")
    if n < len(businesses):
        raise ValueError(f"n={n} is fewer than the {len(businesses)} business events")
    if batch < 1:
        raise ValueError("batch must be at least 1")
    started = time.perf_counter()
    head_file = path.with_name(path.name + ".chainhead")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        if conn.execute("SELECT name FROM sqlite_master WHERE name = 'events'").fetchone() and (
            conn.execute("SELECT 1 FROM events LIMIT 1").fetchone()
        ):
            raise ValueError(f"{path} already holds events; fill_store needs a new store")
    finally:
        conn.close()
    _run(_create(path, businesses))

    conn = sqlite3.connect(path, isolation_level=None)
    try:
        row = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        head_seq, head_hash = (int(row[0]), str(row[1])) if row else (0, "0" * 64)
        # Bulk load: no journal, no fsync, a large cache. The store reopens it in WAL.
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -262144")
        conn.execute("BEGIN")
        result = _append_decisions(conn, n - head_seq, head_seq, head_hash, businesses, seed, batch)
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()
    head_seq, head_hash, checkpoints, subjects = result
    temporary = head_file.with_name(head_file.name + ".tmp")
    temporary.write_text(json.dumps({"seq": head_seq, "hash": head_hash}))
    os.replace(temporary, head_file)
    return FillResult(head_seq, head_seq, head_hash, checkpoints, subjects, time.perf_counter() - started)


def _append_decisions(
    conn: sqlite3.Connection,
    count: int,
    head_seq: int,
    head_hash: str,
    businesses: Sequence[Business],
    seed: int,
    batch: int,
) -> tuple[int, str, int, int]:
    """Insert `count` decisions after (head_seq, head_hash); return the new head and row counts."""
    workload = Workload(seed, businesses)
    salts = random.Random(seed ^ 0x5A17)
    clock = _Clock()
    subjects: dict[str, str] = {}
    texts: dict[str, str] = {}  # spoken text -> its SHA-256
    events: list[tuple[Any, ...]] = []
    new_subjects: list[tuple[str, str, str]] = []
    checkpoints: list[tuple[int, str, str]] = []
    checkpoint_count = 0
    group_first = head_seq + 1
    last = head_seq + count
    for seq in range(head_seq + 1, last + 1):
        event = workload.decision().to_event()
        assert event.phone is not None and event.spoken_text is not None
        subject = subjects.get(event.phone)
        if subject is None:
            salt = f"{salts.getrandbits(128):032x}"
            subject = subjects[event.phone] = subject_commitment(salt, event.phone)
            new_subjects.append((subject, event.phone, salt))
        recorded_at = clock.now()
        row = chain_event(event, seq, head_hash, recorded_at, subject)
        events.append(tuple(row))
        head_hash = digest = row.hash
        if event.spoken_text not in texts:
            texts[event.spoken_text] = text_sha256(event.spoken_text)
        # The end of a writer's commit group: checkpoint it if it passed a multiple.
        if seq - group_first + 1 == batch or seq == last:
            if (group_first - 1) // CHECKPOINT_EVERY != seq // CHECKPOINT_EVERY:
                checkpoints.append((seq, digest, recorded_at))
            group_first = seq + 1
        if len(events) >= _CHUNK:
            _flush(conn, events, new_subjects, checkpoints)
            checkpoint_count += len(checkpoints)
            events, new_subjects, checkpoints = [], [], []
    _flush(conn, events, new_subjects, checkpoints)
    checkpoint_count += len(checkpoints)
    conn.executemany(
        "INSERT OR IGNORE INTO spoken_texts (sha256, text) VALUES (?, ?)",
        [(sha, text) for text, sha in texts.items()],
    )
    return last, head_hash, checkpoint_count, len(subjects)


def _flush(
    conn: sqlite3.Connection,
    events: list[tuple[Any, ...]],
    new_subjects: list[tuple[str, str, str]],
    checkpoints: list[tuple[int, str, str]],
) -> None:
    conn.executemany("INSERT INTO subjects (subject, phone, salt) VALUES (?, ?, ?)", new_subjects)
    conn.executemany("INSERT INTO checkpoints (seq, hash, recorded_at) VALUES (?, ?, ?)", checkpoints)
    conn.executemany(_INSERT_EVENT, events)
