"""SQLite's side of the schema sequence (consent_store/schema), versioned with PRAGMA user_version.

Opening an older database upgrades it step by step; a newer one is refused.
The event table refuses UPDATE and DELETE with triggers.
"""

from __future__ import annotations

import sqlite3

import aiosqlite

from consent_store.exceptions import SchemaTooNew, StoreUnavailable
from consent_store.schema import VERSIONS

# Each entry upgrades the schema from version i to i + 1: the SQLite side of the one
# sequence (consent_store/schema). A change is a new SchemaStep there, never an entry here.
MIGRATIONS: tuple[str, ...] = tuple(step.sqlite for step in VERSIONS)
SCHEMA_VERSION = len(MIGRATIONS)
# The chain head file beside the database exists from this schema version on.
HEAD_FILE_SINCE_VERSION = 2


async def migrate(conn: aiosqlite.Connection) -> int:
    """Bring the database up to SCHEMA_VERSION; return the version found before."""
    async with conn.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    found = int(row[0]) if row else 0
    if found > SCHEMA_VERSION:
        raise SchemaTooNew(found, SCHEMA_VERSION)
    for version in range(found, SCHEMA_VERSION):
        await conn.execute("BEGIN IMMEDIATE")
        # Another process may have upgraded while this one waited for the write lock.
        async with conn.execute("PRAGMA user_version") as cursor:
            now = await cursor.fetchone()
        if now is not None and int(now[0]) > version:
            await conn.execute("ROLLBACK")
            continue
        try:
            for statement in _statements(MIGRATIONS[version]):
                await conn.execute(statement)
            await conn.execute(f"PRAGMA user_version = {version + 1}")
        except sqlite3.Error as exc:
            await conn.execute("ROLLBACK")
            raise StoreUnavailable(
                f"could not upgrade the database schema from version {version} to {version + 1}: {exc}"
            ) from exc
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")
    return found


def _statements(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies whole."""
    statements: list[str] = []
    current: list[str] = []
    for line in script.strip().splitlines():
        current.append(line)
        text = "\n".join(current).strip()
        if text.endswith(";") and (not text.upper().startswith("CREATE TRIGGER") or text.endswith("END;")):
            statements.append(text)
            current = []
    if current and "\n".join(current).strip():
        statements.append("\n".join(current).strip())
    return statements
