"""Side writes (statements that are not chain events) on one SQLite connection, inside a transaction.

Shared by the store's writer thread (`writer.py`) and the status writer process
(`status_process.py`), so both keep the same rule: a group of side writes alone runs together
(one multi-row INSERT per table where `bulk_inserts.merged_inserts` allows it) under one
savepoint, and item by item, each under its own savepoint, when that fails.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from consent_store.bulk_inserts import merged_inserts
from consent_store.exceptions import ConflictingWrite
from consent_store.group_commit import SideWrite


def side_writes_each(conn: sqlite3.Connection, writes: Sequence[SideWrite]) -> ConflictingWrite | None:
    """Run one item's statements under a savepoint: all of them, or none and the conflict."""
    if not writes:
        return None
    conn.execute("SAVEPOINT item")
    try:
        for sql, params in writes:
            conn.execute(sql, params)
    except sqlite3.IntegrityError as exc:
        conn.execute("ROLLBACK TO item")
        conn.execute("RELEASE item")
        return ConflictingWrite(str(exc))
    conn.execute("RELEASE item")
    return None


def side_writes_together(conn: sqlite3.Connection, items: Sequence[Sequence[SideWrite]]) -> bool:
    """Run a group of items' side writes under one savepoint: True, or False with nothing kept
    (one of them conflicted), so that each item is then run on its own with `side_writes_each`.

    The same statements in the same order as item by item, or one multi-row INSERT per table
    when that keeps the outcome (status callbacks, millions a day: 2 statements for a group, not
    2 an item plus 2 savepoint statements)."""
    merged = merged_inserts(items)
    statements = merged if merged is not None else [write for writes in items for write in writes]
    conn.execute("SAVEPOINT together")
    try:
        for sql, params in statements:
            conn.execute(sql, params)
    except sqlite3.IntegrityError:
        conn.execute("ROLLBACK TO together")
        conn.execute("RELEASE together")
        return False
    conn.execute("RELEASE together")
    return True


def side_writes_group(
    conn: sqlite3.Connection, items: Sequence[Sequence[SideWrite]]
) -> list[ConflictingWrite | None]:
    """Each item's outcome of a group of side writes alone: together if it can, else one by one."""
    if len(items) > 1 and side_writes_together(conn, items):
        return [None] * len(items)
    return [side_writes_each(conn, writes) for writes in items]
