"""PostgreSQL's side of the schema sequence (consent_store/schema), recorded in a `schema_sequence` table.

Migrations run on open under a session advisory lock, so several processes
starting together upgrade the database once; a newer schema is refused.
Triggers refuse UPDATE, DELETE and TRUNCATE on the events, checkpoints and
spoken texts, and DELETE/TRUNCATE on the chain head. This module never
changes a consent event: it only creates tables.
"""

from __future__ import annotations

import asyncpg

from consent_store.exceptions import SchemaTooNew, StoreUnavailable
from consent_store.schema import VERSIONS

# Any constant shared by every process that opens this database: the migration lock.
MIGRATION_LOCK = 0x1C0_5E27

# Each entry upgrades the schema from version i to i + 1 ("" where PostgreSQL has nothing to
# do): the PostgreSQL side of the one sequence (consent_store/schema). A change is a new
# SchemaStep there, never an entry here.
MIGRATIONS: tuple[str, ...] = tuple(step.postgres for step in VERSIONS)
SCHEMA_VERSION = len(MIGRATIONS)
# Before the one sequence, PostgreSQL counted its own versions in a `schema_version` table:
# its version 1 held the sequence's versions 1 to 3 (and the API tokens of 4), its version 2
# added the rest of 4 (the append functions), and each later one was the sequence's next.
LEGACY_VERSION_OFFSET = 2
LEGACY_VERSIONS = 6  # the last version recorded that way


def from_legacy_version(legacy: int) -> int:
    """The sequence's version of a database that recorded `legacy` in `schema_version`."""
    if legacy <= 0:
        return 0
    if legacy > LEGACY_VERSIONS:
        raise SchemaTooNew(legacy, LEGACY_VERSIONS)
    return legacy + LEGACY_VERSION_OFFSET


async def _table_exists(conn: asyncpg.Connection, name: str) -> bool:
    return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name))


async def schema_version(conn: asyncpg.Connection) -> int:
    """The version of the sequence this database is at (0 for an empty one)."""
    if await _table_exists(conn, "schema_sequence"):
        return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_sequence"))
    if await _table_exists(conn, "schema_version"):
        return from_legacy_version(
            int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))
        )
    return 0


async def _adopt_legacy_versions(conn: asyncpg.Connection) -> None:
    """Record a database of the old numbering in `schema_sequence`, in one transaction."""
    async with conn.transaction():
        found = await schema_version(conn)
        await conn.execute(_CREATE_SEQUENCE_TABLE)
        await conn.execute("INSERT INTO schema_sequence (version) SELECT generate_series(1, $1::int)", found)
        await conn.execute("DROP TABLE schema_version")


_CREATE_SEQUENCE_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_sequence"
    " (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
)


async def migrate(conn: asyncpg.Connection) -> int:
    """Bring the database up to SCHEMA_VERSION under an advisory lock; return the version found."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        found = await schema_version(conn)
        if found > SCHEMA_VERSION:
            raise SchemaTooNew(found, SCHEMA_VERSION)
        if await _table_exists(conn, "schema_version"):
            await _adopt_legacy_versions(conn)
        for version in range(found, SCHEMA_VERSION):
            try:
                async with conn.transaction():
                    await conn.execute(_CREATE_SEQUENCE_TABLE)
                    if MIGRATIONS[version]:
                        await conn.execute(MIGRATIONS[version])
                    await conn.execute("INSERT INTO schema_sequence (version) VALUES ($1)", version + 1)
            except asyncpg.PostgresError as exc:
                raise StoreUnavailable(
                    f"could not upgrade the database schema from version {version} to {version + 1}: {exc}"
                ) from exc
        return found
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
