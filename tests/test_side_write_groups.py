"""Side writes alone (status callbacks) grouped by the SQLite writer: one savepoint for the group,
and item by item again when one of them fails, so a bad item never takes the others with it."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from consent_store import SQLiteStore
from consent_store.exceptions import ConflictingWrite

# No ON CONFLICT: a second row for the same (message_sid, status) fails with an IntegrityError.
INSERT = (
    "INSERT INTO message_statuses (message_sid, status, error_code, to_number, from_number, channel,"
    " account_sid, business, received_at) VALUES (?, 'sent', NULL, '+14155550100', '+15550001111',"
    " 'sms', NULL, NULL, '2026-12-02T06:00:00.000000Z')"
)
FIRST = "INSERT INTO messages (message_sid, business, to_number, from_number, channel, first_status,"
FIRST += " first_at) VALUES (?, NULL, '+14155550100', '+15550001111', 'sms', 'sent', '2026-12-02T06:00:00Z')"


def sid(n: int) -> str:
    return f"SM{n:032x}"


def kept(path: Path) -> tuple[list[str], list[str]]:
    with sqlite3.connect(path) as conn:
        statuses = [r[0] for r in conn.execute("SELECT message_sid FROM message_statuses ORDER BY 1")]
        messages = [r[0] for r in conn.execute("SELECT message_sid FROM messages ORDER BY 1")]
    return statuses, messages


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "ivr.db")
    await store.open()
    yield store
    await store.close()


async def queued_together(
    store: SQLiteStore, items: list[list[tuple[str, tuple[str]]]]
) -> list[BaseException | None]:
    """Queue every item before the writer runs, so they share one group."""
    commits = store._open_writer().commits
    outcomes = await asyncio.gather(*(store._side_writes(writes) for writes in items), return_exceptions=True)
    assert store._open_writer().commits == commits + 1, "the items were not written as one group"
    return outcomes


async def test_a_group_of_side_writes_is_kept_whole(store: SQLiteStore, tmp_path: Path) -> None:
    items = [[(INSERT, (sid(n),)), (FIRST, (sid(n),))] for n in range(30)]
    outcomes = await queued_together(store, items)
    assert outcomes == [None] * 30
    assert kept(tmp_path / "ivr.db") == ([sid(n) for n in range(30)], [sid(n) for n in range(30)])


async def test_one_failing_item_is_refused_alone_and_the_others_are_kept(
    store: SQLiteStore, tmp_path: Path
) -> None:
    await store._side_writes([(INSERT, (sid(7),))])
    # Item 7's first statement is new for the message table but its status row exists already:
    # its message row must not be kept either (all of an item or none of it).
    items = [[(FIRST, (sid(n),)), (INSERT, (sid(n),))] for n in range(12)]
    outcomes = await queued_together(store, items)
    assert isinstance(outcomes[7], ConflictingWrite), outcomes[7]
    assert [o for i, o in enumerate(outcomes) if i != 7] == [None] * 11
    statuses, messages = kept(tmp_path / "ivr.db")
    assert statuses == [sid(n) for n in range(12)]  # 7's from before, the 11 others now
    assert messages == [sid(n) for n in range(12) if n != 7]


async def test_a_failing_item_alone_keeps_nothing(store: SQLiteStore, tmp_path: Path) -> None:
    await store._side_writes([(INSERT, (sid(1),))])
    with pytest.raises(ConflictingWrite):
        await store._side_writes([(FIRST, (sid(1),)), (INSERT, (sid(1),))])
    assert kept(tmp_path / "ivr.db") == ([sid(1)], [])
