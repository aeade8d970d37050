"""consent_store.sqlite.status_process: on SQLite, status callbacks are committed by a child process
of the store (off the event loop's GIL), as durably as by the writer, and never ahead of a consent.

Real child processes on real SQLite files: started at the first status, restarted after it dies,
stopped with the store; hostile input to the child ends it with one line and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import fcntl
import marshal
import os
import sqlite3
import struct
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from consent_store import SQLiteStore
from consent_store.exceptions import ConflictingWrite, StoreUnavailable
from consent_store.message_statuses import (
    MessageStatusReport,
    count_message_statuses,
    record_message_status,
    status_writes,
)
from consent_store.sqlite.status_process import (
    CHILD_MODULE,
    CONFLICT,
    MAX_FRAME,
    OK,
    StatusWriterProcess,
    lock_path,
    open_lock,
)
from ivr.businesses import add_business


def report(n: int, status: str = "sent") -> MessageStatusReport:
    return MessageStatusReport(
        f"SM{n:032x}", status, "+14155550100", "+15550001111", "sms", "2026-12-02T10:00:00.000000Z"
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    async with SQLiteStore(tmp_path / "ivr.db") as opened:
        yield opened


def lane_of(store: SQLiteStore) -> StatusWriterProcess:
    lane = store._status_lane
    assert lane is not None
    return lane


def child_pid(lane: StatusWriterProcess) -> int:
    assert lane._process is not None
    return lane._process.pid


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_statuses_are_kept_by_one_child_and_read_back_at_once(tmp_path: Path) -> None:
    path = tmp_path / "ivr.db"
    async with SQLiteStore(path) as store:
        lane = lane_of(store)
        assert lane.started == 0  # no process for a store that keeps no status
        commits = store._open_writer().commits
        await asyncio.gather(*(record_message_status(store, report(n)) for n in range(300)))
        # Read right after the answers, by the store's own reader: every one is there.
        assert await count_message_statuses(store) == (300, 300)
        await record_message_status(store, report(7))  # a repeat changes nothing
        assert await count_message_statuses(store) == (300, 300)
        assert lane.started == 1
        assert store._open_writer().commits == commits  # none went through the writer thread
        pid = child_pid(lane)
        assert alive(pid)
    assert not alive(pid)  # stopped and reaped with the store
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM message_statuses").fetchone() == (300,)
    assert lock_path(path).stat().st_mode & 0o777 == 0o600


async def test_a_conflicting_item_fails_alone_and_the_rest_of_its_group_is_kept(store: SQLiteStore) -> None:
    insert = (
        "INSERT INTO message_statuses (message_sid, status, error_code, to_number, from_number, channel,"
        " account_sid, business, received_at) VALUES (?, 'sent', NULL, '+14155550100', '+15550001111',"
        " 'sms', NULL, NULL, 't')"
    )
    items = [[(insert, (f"SM{n:032x}",))] for n in (1, 2, 2, 3)]
    # One turn of the event loop: one frame, one transaction in the child.
    outcomes = await asyncio.gather(*(store._bulk_side_writes(w) for w in items), return_exceptions=True)
    assert outcomes[:2] == [None, None] and outcomes[3] is None
    assert isinstance(outcomes[2], ConflictingWrite) and "UNIQUE" in str(outcomes[2])
    rows = await store._fetchall("SELECT message_sid FROM message_statuses ORDER BY message_sid")
    assert [row[0] for row in rows] == [f"SM{n:032x}" for n in (1, 2, 3)]


async def test_a_killed_child_fails_what_it_held_and_the_next_status_starts_another(
    store: SQLiteStore,
) -> None:
    lane = lane_of(store)
    await record_message_status(store, report(0))
    first = child_pid(lane)
    # Hold the writers' turn: the child cannot commit what it is sent next.
    lock = open_lock(store.path)
    assert lock is not None
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        held = asyncio.ensure_future(record_message_status(store, report(1)))
        await asyncio.sleep(0.2)
        assert not held.done()
        os.kill(first, 9)
        with pytest.raises(StoreUnavailable, match="stopped before it answered"):
            await held
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        os.close(lock)
    await record_message_status(store, report(2))
    assert lane.started == 2 and child_pid(lane) != first
    rows = await store._fetchall("SELECT message_sid FROM message_statuses ORDER BY message_sid")
    assert [row[0] for row in rows] == [f"SM{n:032x}" for n in (0, 2)]  # the unanswered one not kept


async def test_a_child_that_cannot_start_delays_the_next_and_statuses_fail_at_once_meanwhile(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash loop (here: the child's module cannot be found, exit 1 before any answer) starts
    one process per wait, growing, not one per status; a child that answers resets the wait."""
    lane = lane_of(store)
    lane.retry_seconds = 0.3
    monkeypatch.setattr(
        "consent_store.sqlite.status_process.CHILD_MODULE", "consent_store.sqlite.no_such_child"
    )
    with pytest.raises(StoreUnavailable, match="stopped before it answered"):
        await record_message_status(store, report(0))
    assert lane.started == 1
    for n in range(1, 20):  # within the wait: refused at once, no new process
        with pytest.raises(StoreUnavailable, match=r"1 time\(s\) in a row .*next start in 0\.[0-3] s"):
            await record_message_status(store, report(n))
    assert lane.started == 1
    await asyncio.sleep(0.35)
    with pytest.raises(StoreUnavailable, match="stopped before it answered"):
        await record_message_status(store, report(20))
    assert lane.started == 2
    with pytest.raises(StoreUnavailable, match=r"2 time\(s\) in a row .*next start in 0\.[4-6] s"):
        await record_message_status(store, report(21))  # the wait doubled
    monkeypatch.undo()
    await asyncio.sleep(0.65)
    await record_message_status(store, report(22))  # the real child again: kept
    assert lane.started == 3
    rows = await store._fetchall("SELECT message_sid FROM message_statuses")
    assert [row[0] for row in rows] == [f"SM{22:032x}"]  # none of the refused ones
    # It answered: a later stop before any answer waits the first wait again, not a longer one.
    assert lane._failed_starts == 0


async def test_the_child_and_the_writer_both_wait_for_the_writers_turn(store: SQLiteStore) -> None:
    """The turn (a flock) orders both writers' transactions, so a flood of statuses cannot keep a
    consent waiting on SQLite's busy timeout: while it is held elsewhere, neither commits."""
    await record_message_status(store, report(0))  # the child is running
    lock = open_lock(store.path)
    assert lock is not None
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        status = asyncio.ensure_future(record_message_status(store, report(1)))
        business = asyncio.ensure_future(
            add_business(store, "Turn Bakery", ["+15550002222"], ["order updates"])
        )
        await asyncio.sleep(0.3)
        assert not status.done() and not business.done()
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        os.close(lock)
    await asyncio.wait_for(asyncio.gather(status, business), 30)
    assert await count_message_statuses(store) == (2, 2)
    assert (await store.get_business("Turn Bakery")).numbers == ("+15550002222",)


async def test_close_keeps_what_was_sent_then_stops_the_child(tmp_path: Path) -> None:
    path = tmp_path / "ivr.db"
    store = SQLiteStore(path)
    await store.open()
    writes = [asyncio.ensure_future(record_message_status(store, report(n))) for n in range(50)]
    await asyncio.sleep(0)  # queued, perhaps not yet sent
    await store.close()
    outcomes = await asyncio.gather(*writes, return_exceptions=True)
    kept = sum(1 for outcome in outcomes if outcome is None)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM message_statuses").fetchone() == (kept,)
    assert kept == 50
    with pytest.raises(StoreUnavailable):
        await record_message_status(store, report(99))


def run_child(database: Path, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", CHILD_MODULE, str(database)],
        input=stdin,
        capture_output=True,
        timeout=60,
    )


def frame(payload: object) -> bytes:
    data = marshal.dumps(payload)
    return struct.pack(">I", len(data)) + data


async def test_the_child_answers_a_frame_and_ends_at_end_of_input(store: SQLiteStore) -> None:
    writes = status_writes(report(5))
    done = run_child(store.path, frame([(1, writes), (2, writes)]))
    assert done.returncode == 0, done.stderr
    length = struct.unpack(">I", done.stdout[:4])[0]
    assert marshal.loads(done.stdout[4 : 4 + length]) == [(1, OK, ""), (2, OK, "")]  # the repeat: ON CONFLICT
    assert await count_message_statuses(store) == (1, 1)
    plain = "INSERT INTO message_statuses (message_sid, status, to_number, from_number, channel, received_at)"
    clash = [(plain + " VALUES (?, 'sent', '+1', '+2', 'sms', 't')", (f"SM{5:032x}",))]
    done = run_child(store.path, frame([(3, clash)]))
    [(item, kind, text)] = marshal.loads(done.stdout[4:])
    assert (item, kind) == (3, CONFLICT) and "UNIQUE" in text


@pytest.mark.parametrize(
    "stdin",
    [
        struct.pack(">I", MAX_FRAME + 1),  # a length no parent sends
        struct.pack(">I", 3) + b"\xff\xfe\xfd",  # not marshal
        frame({"not": "a list of items"}),
        frame([(1, status_writes(report(1)))]) + frame([(2, "x")]),  # not (sql, params) pairs
    ],
    ids=["oversized", "garbage", "wrong-shape", "bad-writes"],
)
async def test_hostile_input_ends_the_child_with_one_line_and_writes_nothing(
    store: SQLiteStore, stdin: bytes
) -> None:
    done = run_child(store.path, stdin)
    assert done.returncode == 1
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("status writer process: ")
    assert await count_message_statuses(store) == (0, 0)  # the valid item beside it rolled back


async def test_an_interrupt_to_the_process_group_leaves_the_child_to_end_with_its_input(
    store: SQLiteStore,
) -> None:
    """Ctrl-C reaches every process of the group: the child ignores it and keeps committing,
    so the server can answer what is in flight before it closes the child's input."""
    lane = lane_of(store)
    await record_message_status(store, report(0))  # answered: past the child's signal set-up
    pid = child_pid(lane)
    os.kill(pid, 2)
    os.kill(pid, 15)
    await record_message_status(store, report(1))
    assert child_pid(lane) == pid and lane.started == 1
    assert await count_message_statuses(store) == (2, 2)


async def test_without_a_lock_file_both_writers_still_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Where the lock file cannot be created (here a folder stands in its way), the writers
    fall back to SQLite's busy timeout: a warning, and nothing refused."""
    path = tmp_path / "ivr.db"
    lock_path(path).mkdir()
    async with SQLiteStore(path) as store:
        await add_business(store, "Lockless", ["+15550003333"], ["order updates"])
        await asyncio.gather(*(record_message_status(store, report(n)) for n in range(20)))
        assert await count_message_statuses(store) == (20, 20)
    assert "no writers' lock file" in caplog.text
