"""A group of side writes of one shape as multi-row INSERTs: one statement per table, not per item.

Status callbacks arrive by the thousand a second, each two single-row INSERTs (`message_statuses`,
`messages`). Run one by one, a group of 50 costs 100 statements, and the writer thread takes the
GIL back from the event loop after each of them; as one multi-row INSERT per table it is 2
(in process about 15% less CPU per callback, both threads; docs/performance.md). On PostgreSQL
each statement is a round trip, and each item its own savepoint: two round trips instead of
four per item.

Only when it cannot change the outcome: every item runs the same statements, each a plain
`INSERT INTO t (...) VALUES (...)` (optionally `ON CONFLICT (...) DO NOTHING`) into a table no
other statement of the shape writes. SQLite inserts the rows of one statement in order, so each
table receives its rows in the same order as item by item; the tables differ, so the order
between them does not matter (no table has an INSERT trigger that could read another: a test in
tests/test_status_bulk_writes.py fails if one is added). Anything else returns None and runs as
before.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from consent_store.group_commit import SideWrite

# SQLite's limit on a statement's parameters before 3.32 (999); later versions allow 32,766,
# PostgreSQL 32,767.
MAX_PARAMETERS = 999

_PLAIN_INSERT = re.compile(
    r"INSERT INTO (?P<table>\w+) \([\w, ]+\) VALUES (?P<row>\((?:[^()'\"]|'[^']*')*\))"
    r"(?P<conflict> ON CONFLICT \([\w, ]+\) DO NOTHING)?"
)


def merged_inserts(items: Sequence[Sequence[SideWrite]]) -> list[tuple[str, list[Any]]] | None:
    """The statements that write `items` (a group of side writes) together, or None if they may not."""
    if len(items) < 2:
        return None
    shape = [sql for sql, _ in items[0]]
    matches = [_PLAIN_INSERT.fullmatch(sql) for sql in shape]
    if not shape or any(m is None for m in matches):
        return None
    if len({m["table"] for m in matches if m is not None}) != len(shape):
        return None
    if any([sql for sql, _ in writes] != shape for writes in items):
        return None
    statements: list[tuple[str, list[Any]]] = []
    for k, match in enumerate(matches):
        assert match is not None
        width = max(1, len(items[0][k][1]))
        per_statement = max(1, MAX_PARAMETERS // width)
        head = shape[k][: match.start("row")]
        tail = match["conflict"] or ""
        for start in range(0, len(items), per_statement):
            chunk = items[start : start + per_statement]
            params = [value for writes in chunk for value in writes[k][1]]
            statements.append((head + ", ".join([match["row"]] * len(chunk)) + tail, params))
    return statements
