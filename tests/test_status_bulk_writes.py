"""consent_store.bulk_inserts: a group of status writes as multi-row INSERTs keeps exactly what
item-by-item statements keep (the first status of a message, duplicates, order), or is not merged."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent_store import SQLiteStore, open_store
from consent_store.bulk_inserts import MAX_PARAMETERS, merged_inserts
from consent_store.exceptions import ConflictingWrite
from consent_store.group_commit import SideWrite
from consent_store.message_statuses import MessageStatusReport, status_writes
from consent_store.schema import VERSIONS

pytest_plugins = ["tests.pg_server"]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite3.Connection]:
    """The real schema, migrated once; each example works on an in-memory copy."""
    path = tmp_path_factory.mktemp("bulk") / "ivr.db"

    async def create() -> None:
        async with SQLiteStore(path):
            pass

    asyncio.run(create())
    with sqlite3.connect(path) as conn:
        yield conn


def copy_of(template: sqlite3.Connection) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    template.backup(conn)
    return conn


def contents(conn: sqlite3.Connection) -> tuple[list[Any], list[Any]]:
    return (
        conn.execute("SELECT * FROM message_statuses ORDER BY rowid").fetchall(),
        conn.execute("SELECT * FROM messages ORDER BY rowid").fetchall(),
    )


SIDS = [f"SM{n:032x}" for n in range(6)]  # few messages: a group often holds two of one
reports = st.builds(
    MessageStatusReport,
    message_sid=st.sampled_from(SIDS),
    status=st.sampled_from(["queued", "sent", "delivered", "read", "failed"]),
    to_number=st.sampled_from(["+14155550100", "+34600000001"]),
    from_number=st.just("+15550001111"),
    channel=st.sampled_from(["whatsapp", "sms"]),
    received_at=st.sampled_from(["2026-12-02T10:00:00.000000Z", "2026-12-02T10:00:01.000000Z"]),
    error_code=st.one_of(st.none(), st.sampled_from([63016, 30003])),
    account_sid=st.one_of(st.none(), st.just("AC" + "0" * 32)),
    business=st.one_of(st.none(), st.sampled_from(["Acme", "O'Brien; DROP TABLE x --"])),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(reports, min_size=2, max_size=40), min_size=1, max_size=3))
def test_merged_groups_keep_what_item_by_item_keeps(
    template: sqlite3.Connection, groups: list[list[MessageStatusReport]]
) -> None:
    one_by_one, merged = copy_of(template), copy_of(template)
    for group in groups:
        items = [status_writes(each) for each in group]
        for writes in items:
            for sql, values in writes:
                one_by_one.execute(sql, values)
        statements = merged_inserts(items)
        assert statements is not None and len(statements) == 2
        for sql, params in statements:
            merged.execute(sql, params)
    assert contents(merged) == contents(one_by_one)


def report(n: int, status: str = "sent") -> MessageStatusReport:
    return MessageStatusReport(
        f"SM{n:032x}", status, "+14155550100", "+15550001111", "sms", "2026-12-02T10:00:00Z"
    )


def test_a_group_larger_than_the_parameter_limit_is_split_and_kept_whole(
    template: sqlite3.Connection,
) -> None:
    items = [
        status_writes(
            MessageStatusReport(
                f"SM{n:032x}", "sent", "+14155550100", "+15550001111", "sms", "2026-12-02T10:00:00Z"
            )
        )
        for n in range(500)
    ]
    statements = merged_inserts(items)
    assert statements is not None
    assert all(len(params) <= MAX_PARAMETERS for _, params in statements)
    assert len(statements) > 2
    conn = copy_of(template)
    for sql, params in statements:
        conn.execute(sql, params)
    statuses, messages = contents(conn)
    assert [row[0] for row in statuses] == [f"SM{n:032x}" for n in range(500)]
    assert len(messages) == 500


INSERT_A = "INSERT INTO a (x, y) VALUES (?, ?)"
INSERT_B = "INSERT INTO b (x) VALUES (?) ON CONFLICT (x) DO NOTHING"


@pytest.mark.parametrize(
    "items",
    [
        [[(INSERT_A, (1, 2))]],  # one item: nothing to merge
        [[(INSERT_A, (1, 2))], [(INSERT_B, (1,))]],  # different shapes
        [[(INSERT_A, (1, 2)), (INSERT_B, (1,))], [(INSERT_A, (1, 2))]],  # one item has fewer
        [[(INSERT_A, (1, 2)), (INSERT_A, (3, 4))], [(INSERT_A, (1, 2)), (INSERT_A, (3, 4))]],  # a table twice
        [[("INSERT INTO a (x, y) SELECT x, y FROM c", ())]] * 2,  # reads another table
        [[("INSERT INTO b (x) VALUES (?) ON CONFLICT (x) DO UPDATE SET x = 1", (1,))]] * 2,
        [[("UPDATE a SET x = ?", (1,))]] * 2,
        [[("INSERT INTO a (x, y) VALUES ((SELECT max(x) FROM c), ?)", (1,))]] * 2,
        [[("INSERT INTO a (x, y) VALUES (?, ?); DELETE FROM c", (1, 2))]] * 2,
        [[]] * 2,
    ],
    ids=[
        "single",
        "shapes",
        "lengths",
        "same-table",
        "insert-select",
        "do-update",
        "update",
        "subquery",
        "two-statements",
        "empty",
    ],
)
def test_groups_that_could_change_their_outcome_are_not_merged(items: Sequence[Sequence[SideWrite]]) -> None:
    assert merged_inserts(items) is None


def test_literals_in_the_row_are_repeated_as_written() -> None:
    sql = "INSERT INTO a (x, y) VALUES (?, 'it''s, (not) a row')"
    statements = merged_inserts([[(sql, (1,))], [(sql, (2,))]])
    assert statements == [
        ("INSERT INTO a (x, y) VALUES (?, 'it''s, (not) a row'), (?, 'it''s, (not) a row')", [1, 2])
    ]


async def test_the_writers_keep_a_merged_group_in_one_commit(store_url: str) -> None:
    """Both backends: 40 status callbacks queued together, one commit, every row kept once."""
    async with open_store(store_url) as store:
        writer = store._open_writer()  # type: ignore[attr-defined]
        commits = writer.commits
        group = [status_writes(report(n, "read")) for n in range(40)] * 2  # each one twice
        await asyncio.gather(*(store._side_writes(writes) for writes in group))
        assert writer.commits == commits + 1
        rows = await store._fetchall("SELECT message_sid FROM message_statuses ORDER BY message_sid")
        assert [row[0] for row in rows] == [f"SM{n:032x}" for n in range(40)]
        firsts = await store._fetchall("SELECT count(*) FROM messages")
        assert firsts[0][0] == 40


async def test_a_failing_item_of_a_merged_group_fails_alone(store_url: str) -> None:
    """Both backends: without ON CONFLICT a repeated row fails the merged INSERT; then each item
    runs on its own, the repeat gets ConflictingWrite and the others are kept."""
    insert = (
        "INSERT INTO message_statuses (message_sid, status, error_code, to_number, from_number, channel,"
        " account_sid, business, received_at) VALUES (?, 'sent', NULL, '+14155550100', '+15550001111',"
        " 'sms', NULL, NULL, 't')"
    )
    async with open_store(store_url) as store:
        items = [[(insert, (f"SM{n:032x}",))] for n in (1, 2, 2, 3)]
        assert merged_inserts(items) is not None
        outcomes = await asyncio.gather(*(store._side_writes(w) for w in items), return_exceptions=True)
        assert outcomes[:2] == [None, None] and outcomes[3] is None
        assert isinstance(outcomes[2], ConflictingWrite)
        rows = await store._fetchall("SELECT message_sid FROM message_statuses ORDER BY message_sid")
        assert [row[0] for row in rows] == [f"SM{n:032x}" for n in (1, 2, 3)]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_no_table_has_an_insert_trigger_merging_would_reorder(backend: str) -> None:
    """Merging reorders rows between tables; an INSERT trigger reading another table could see it."""
    ddl = " ".join(getattr(step, backend) for step in VERSIONS).upper()
    triggers = re.findall(r"CREATE TRIGGER\s+(\w+)\s+(?:BEFORE|AFTER|INSTEAD OF)\s+([\w\s,]+?)\s+ON\s", ddl)
    assert triggers, "the schema's no-update and no-truncate triggers are expected here"
    assert [name for name, events in triggers if "INSERT" in events] == []
