"""What only the PostgreSQL backend has to show: several writers, migrations under a lock, copying."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from consent_store import Business, ConsentDecision, ExportFilter, PostgresStore, open_store, text_sha256
from consent_store.exceptions import SchemaTooNew, StoreUnavailable, TargetNotEmpty
from consent_store.postgres.copy import copy_log
from consent_store.postgres.schema import LEGACY_VERSIONS, SCHEMA_VERSION, from_legacy_version

pytest_plugins = ["tests.pg_server"]

ACME = "Acme Parcels"
# How PostgreSQL recorded its own version numbers before the one sequence.
LEGACY_TABLE = (
    "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ DEFAULT now())"
)


def decision(n: int) -> ConsentDecision:
    return ConsentDecision(
        f"CA{n:032d}",
        f"+1415556{n:04d}",
        ACME,
        "opt_in",
        ("updates",),
        "1",
        "en-US",
        1,
        text_sha256("hi"),
        "hi",
    )


async def add_acme(store: PostgresStore | object) -> None:
    assert isinstance(store, PostgresStore)
    await store.add_business(
        Business(ACME, ("+15550001111",), ("updates",), ("en-US",)), {"en-US": "hi"}, "t"
    )


async def admin(url: str, *statements: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        rows: list[asyncpg.Record] = []
        for statement in statements:
            rows = await conn.fetch(statement)
        return rows
    finally:
        await conn.close()


async def test_processes_opening_together_migrate_the_schema_once(pg_url: str) -> None:
    stores = [PostgresStore(pg_url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    for store in stores:
        await store.close()
    rows = await admin(pg_url, "SELECT version FROM schema_sequence ORDER BY version")
    assert [r[0] for r in rows] == list(range(1, SCHEMA_VERSION + 1))


async def test_a_newer_schema_is_refused(pg_url: str) -> None:
    async with open_store(pg_url):
        pass
    await admin(pg_url, f"INSERT INTO schema_sequence (version) VALUES ({SCHEMA_VERSION + 1})")
    with pytest.raises(SchemaTooNew):
        async with open_store(pg_url):
            pass


async def test_a_version_1_database_with_records_is_upgraded_and_its_chain_continues(pg_url: str) -> None:
    async with open_store(pg_url) as store:
        await add_acme(store)
        before = await store.record_decision(decision(1))
    # Back to what version 1 left: no append functions, no opt-out webhooks, no sessions, schema 1.
    await admin(
        pg_url,
        "DROP FUNCTION consent_store_append",
        "DROP FUNCTION consent_store_add_subjects_and_texts",
        "DROP TABLE opt_out_webhooks",
        "DROP TABLE web_sessions",
        "ALTER TABLE users DROP COLUMN businesses, DROP COLUMN last_sign_in",
        "ALTER TABLE api_tokens DROP COLUMN businesses",
        "DROP TABLE message_statuses",
        "DROP TABLE messages",
        "DROP INDEX events_decisions_by_business",
        # As the old numbering recorded it: PostgreSQL's own version 1 in `schema_version`.
        "DROP TABLE schema_sequence",
        LEGACY_TABLE,
        "INSERT INTO schema_version (version) VALUES (1)",
    )
    async with open_store(pg_url) as store:
        after = await store.record_decision(decision(2))
        assert (after.seq, after.prev_hash) == (before.seq + 1, before.hash)
        result = await store.verify()
        assert result.intact and result.count == 3
    rows = await admin(pg_url, "SELECT max(version), to_regclass('schema_version') FROM schema_sequence")
    assert (rows[0][0], rows[0][1]) == (SCHEMA_VERSION, None)


async def as_legacy_numbering(url: str, legacy: int) -> None:
    """Record the schema as PostgreSQL did before the one sequence: its own numbers, `schema_version`."""
    await admin(
        url,
        "DROP TABLE schema_sequence",
        LEGACY_TABLE,
        f"INSERT INTO schema_version (version) SELECT generate_series(1, {legacy})",
    )


def test_the_old_postgresql_numbers_map_onto_the_one_sequence() -> None:
    # Its version 1 held the sequence's 1 to 3, its version 2 completed 4, then one for one.
    assert [from_legacy_version(n) for n in range(LEGACY_VERSIONS + 1)] == [0, 3, 4, 5, 6, 7, 8]
    with pytest.raises(SchemaTooNew):
        from_legacy_version(LEGACY_VERSIONS + 1)


async def test_a_database_at_the_last_old_version_opens_as_the_same_schema_and_keeps_its_chain(
    pg_url: str,
) -> None:
    async with open_store(pg_url) as store:
        await add_acme(store)
        before = await store.record_decision(decision(1))
    await as_legacy_numbering(pg_url, LEGACY_VERSIONS)
    # Nothing is re-run (it would fail: every table exists); the numbers are adopted.
    async with open_store(pg_url) as store:
        after = await store.record_decision(decision(2))
        assert (after.seq, after.prev_hash) == (before.seq + 1, before.hash)
        assert (await store.verify()).intact
    rows = await admin(pg_url, "SELECT version FROM schema_sequence ORDER BY version")
    assert [r[0] for r in rows] == list(range(1, SCHEMA_VERSION + 1))
    assert (await admin(pg_url, "SELECT to_regclass('schema_version')"))[0][0] is None


async def test_a_database_of_an_unknown_old_version_is_refused_untouched(pg_url: str) -> None:
    async with open_store(pg_url):
        pass
    await as_legacy_numbering(pg_url, LEGACY_VERSIONS + 1)
    with pytest.raises(SchemaTooNew):
        async with open_store(pg_url):
            pass
    rows = await admin(pg_url, "SELECT max(version), to_regclass('schema_sequence') FROM schema_version")
    assert (rows[0][0], rows[0][1]) == (LEGACY_VERSIONS + 1, None)


async def test_writers_of_several_processes_append_one_linear_chain(pg_url: str) -> None:
    """Three stores, each with its own pool and writer, as three processes would have."""
    stores = [PostgresStore(pg_url, max_batch=32) for _ in range(3)]
    for store in stores:
        await store.open()
    try:
        await add_acme(stores[0])
        # Every decision is sent to every writer: each is recorded exactly once.
        results = await asyncio.gather(*(s.record_decision(decision(n)) for n in range(300) for s in stores))
        assert sum(not r.duplicate for r in results) == 300
        assert await stores[1].count_decisions(ExportFilter()) == 300
        result = await stores[2].verify()
        assert result.intact and result.count == 301
        assert sum(s._writer.commits for s in stores if s._writer) > 3  # grouped, not one transaction
    finally:
        for store in stores:
            await store.close()


async def test_the_database_refuses_truncate_and_removing_the_chain_head(pg_url: str) -> None:
    async with open_store(pg_url) as store:
        await store.record_decision(decision(1))
    for statement in (
        "TRUNCATE events",
        "TRUNCATE checkpoints",
        "DELETE FROM chain_head",
        "DELETE FROM spoken_texts",
    ):
        with pytest.raises(asyncpg.PostgresError, match="append-only"):
            await admin(pg_url, statement)


async def test_the_writer_survives_killed_connections_and_the_pool_reconnects(pg_url: str) -> None:
    async with open_store(pg_url) as store:
        assert isinstance(store, PostgresStore)
        await add_acme(store)
        await store.record_decision(decision(1))
        blocker = await asyncpg.connect(pg_url)
        try:
            async with blocker.transaction():
                await blocker.execute("SELECT 1 FROM chain_head FOR UPDATE")
                pending = asyncio.create_task(store.record_decision(decision(2)))
                await _wait_for_lock_waiter(blocker)
                await blocker.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                with pytest.raises(StoreUnavailable):
                    await pending
        finally:
            await blocker.close()
        again = await store.record_decision(decision(2))
        assert not again.duplicate and again.seq == 3
        await store.ping()
        assert (await store.verify()).count == 3


async def _wait_for_lock_waiter(conn: asyncpg.Connection) -> None:
    for _ in range(200):
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if waiting:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the writer never waited for the chain lock")


async def test_copy_moves_an_sqlite_log_into_postgresql_verbatim(pg_url: str, tmp_path: Path) -> None:
    source_url = f"sqlite:///{tmp_path / 'old.db'}"
    async with open_store(source_url) as source:
        await source.add_business(
            Business(ACME, ("+15550001111",), ("updates",), ("en-US",)), {"en-US": "hi"}, "t"
        )
        await asyncio.gather(*(source.record_decision(decision(n)) for n in range(300)))
        await source.add_user("ann", "auditor", "hash", "t")
        await source.forget_phone("+14155560007", "dpo", "asked")
        expected = await source.verify()
        rows = [r async for r in source.export_decisions(ExportFilter())]
    async with open_store(source_url) as source, open_store(pg_url) as target:
        report = await copy_log(source, target)
        assert (report.events, report.head) == (expected.count, expected.head)
        assert [r async for r in target.export_decisions(ExportFilter())] == rows
        assert (await target.get_user("ann")) is not None
        with pytest.raises(TargetNotEmpty):
            await copy_log(source, target)
    async with open_store(pg_url) as target:
        appended = await target.record_decision(decision(999))
        assert appended.seq == expected.count + 1 and appended.prev_hash == expected.head
        assert (await target.verify()).intact
