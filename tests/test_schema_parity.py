"""The two backends follow one schema sequence: after each version they hold the same tables and columns."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import asyncpg

from consent_store import PostgresStore, SQLiteStore
from consent_store.postgres.schema import MIGRATIONS as POSTGRES_MIGRATIONS
from consent_store.schema import BACKEND_ONLY_TABLES, SCHEMA_VERSION, VERSIONS
from consent_store.sqlite.schema import MIGRATIONS as SQLITE_MIGRATIONS

pytest_plugins = ["tests.pg_server"]

# PostgreSQL's first version held SQLite's first four at once: from there on they agree.
AGREE_FROM = 4

Tables = dict[str, list[str]]


def sqlite_tables(conn: sqlite3.Connection) -> Tables:
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    return {
        name: [r[1] for r in conn.execute(f"PRAGMA table_info({name})")]
        for name in names
        if name not in BACKEND_ONLY_TABLES["sqlite"] and not name.startswith("sqlite_")
    }


async def postgres_tables(conn: asyncpg.Connection) -> Tables:
    rows = await conn.fetch(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
    )
    tables: Tables = {}
    for table, column in rows:
        if table not in BACKEND_ONLY_TABLES["postgres"]:
            tables.setdefault(table, []).append(column)
    return tables


def test_both_backends_run_the_same_sequence_of_versions() -> None:
    assert len(SQLITE_MIGRATIONS) == len(POSTGRES_MIGRATIONS) == len(VERSIONS) == SCHEMA_VERSION
    assert [step.sqlite for step in VERSIONS] == list(SQLITE_MIGRATIONS)
    assert [step.postgres for step in VERSIONS] == list(POSTGRES_MIGRATIONS)


async def test_stores_opened_on_each_backend_hold_the_same_tables_and_columns(
    tmp_path: Path, pg_url: str
) -> None:
    async with SQLiteStore(tmp_path / "ivr.db"):
        pass
    async with PostgresStore(pg_url):
        pass
    with contextlib.closing(sqlite3.connect(tmp_path / "ivr.db")) as lite:
        on_sqlite = sqlite_tables(lite)
        assert lite.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn = await asyncpg.connect(pg_url)
    try:
        on_postgres = await postgres_tables(conn)
        assert await conn.fetchval("SELECT max(version) FROM schema_sequence") == SCHEMA_VERSION
    finally:
        await conn.close()
    assert "events" in on_sqlite and "messages" in on_sqlite  # the reads above see the tables
    assert on_sqlite == on_postgres


async def test_after_each_version_the_two_schemas_agree(tmp_path: Path, pg_url: str) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        with contextlib.closing(sqlite3.connect(tmp_path / "steps.db", isolation_level=None)) as lite:
            for number, step in enumerate(VERSIONS, 1):
                lite.executescript(step.sqlite)
                if step.postgres:
                    await conn.execute(step.postgres)
                if number >= AGREE_FROM:
                    assert sqlite_tables(lite) == await postgres_tables(conn), f"version {number}"
    finally:
        await conn.close()
