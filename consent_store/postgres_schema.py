"""PostgreSQL schema and its versioned migrations (a `schema_version` table).

Migrations run on open under a session advisory lock, so several processes
starting together upgrade the database once; a newer schema is refused.
Triggers refuse UPDATE, DELETE and TRUNCATE on the events, checkpoints and
spoken texts, and DELETE/TRUNCATE on the chain head. This module never
changes a consent event: it only creates tables.
"""

from __future__ import annotations

import asyncpg

from consent_store.chain import GENESIS_HASH
from consent_store.exceptions import SchemaTooNew, StoreUnavailable

# Any constant shared by every process that opens this database: the migration lock.
MIGRATION_LOCK = 0x1C0_5E27

_V1 = f"""
CREATE TABLE events (
    seq BIGINT PRIMARY KEY,
    recorded_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    call_sid TEXT,
    business TEXT,
    subject TEXT,
    action TEXT,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX events_by_call ON events (call_sid, kind);
CREATE INDEX events_standing ON events (subject, business, seq)
    WHERE kind = 'decision' AND action IN ('opt_in', 'opt_out');
CREATE INDEX events_decisions_by_time ON events (recorded_at) WHERE kind = 'decision';

-- The chain's head, one row, locked by every appending transaction (FOR UPDATE):
-- this is what keeps one linear chain when several processes append.
CREATE TABLE chain_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO chain_head (id, seq, hash) VALUES (1, 0, '{GENESIS_HASH}');

CREATE TABLE checkpoints (
    seq BIGINT PRIMARY KEY,
    hash TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE TABLE subjects (
    subject TEXT PRIMARY KEY,
    phone TEXT NOT NULL UNIQUE,
    salt TEXT NOT NULL
);
CREATE TABLE spoken_texts (
    sha256 TEXT PRIMARY KEY,
    text TEXT NOT NULL
);
CREATE TABLE businesses (
    name TEXT PRIMARY KEY,
    message_types TEXT NOT NULL,
    locales TEXT NOT NULL,
    demo INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE TABLE numbers (
    number TEXT PRIMARY KEY,
    business TEXT NOT NULL REFERENCES businesses (name)
);
CREATE TABLE scripts (
    business TEXT NOT NULL REFERENCES businesses (name),
    locale TEXT NOT NULL,
    version INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('draft', 'published', 'superseded')),
    text TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at TEXT NOT NULL,
    author TEXT NOT NULL,
    PRIMARY KEY (business, locale, version)
);
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('manager', 'auditor')),
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE script_drafts (
    business TEXT NOT NULL REFERENCES businesses (name),
    locale TEXT NOT NULL,
    text TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    author TEXT NOT NULL,
    PRIMARY KEY (business, locale)
);
CREATE TABLE api_tokens (
    name TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);

CREATE FUNCTION consent_store_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'table % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION consent_store_refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION consent_store_refuse_change();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION consent_store_refuse_change();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION consent_store_refuse_change();
CREATE TRIGGER spoken_texts_append_only BEFORE UPDATE OR DELETE ON spoken_texts
    FOR EACH ROW EXECUTE FUNCTION consent_store_refuse_change();
CREATE TRIGGER spoken_texts_no_truncate BEFORE TRUNCATE ON spoken_texts
    FOR EACH STATEMENT EXECUTE FUNCTION consent_store_refuse_change();
CREATE TRIGGER chain_head_kept BEFORE DELETE ON chain_head
    FOR EACH ROW EXECUTE FUNCTION consent_store_refuse_change();
CREATE TRIGGER chain_head_no_truncate BEFORE TRUNCATE ON chain_head
    FOR EACH STATEMENT EXECUTE FUNCTION consent_store_refuse_change();
"""

# Each entry upgrades the schema from version i to i + 1; append, never edit.
MIGRATIONS: tuple[str, ...] = (_V1,)
SCHEMA_VERSION = len(MIGRATIONS)


async def schema_version(conn: asyncpg.Connection) -> int:
    """The version recorded in the database (0 for an empty one)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))


async def migrate(conn: asyncpg.Connection) -> int:
    """Bring the database up to SCHEMA_VERSION under an advisory lock; return the version found."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        found = await schema_version(conn)
        if found > SCHEMA_VERSION:
            raise SchemaTooNew(found, SCHEMA_VERSION)
        for version in range(found, SCHEMA_VERSION):
            try:
                async with conn.transaction():
                    await conn.execute(
                        "CREATE TABLE IF NOT EXISTS schema_version"
                        " (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                    )
                    await conn.execute(MIGRATIONS[version])
                    await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version + 1)
            except asyncpg.PostgresError as exc:
                raise StoreUnavailable(
                    f"could not upgrade the database schema from version {version} to {version + 1}: {exc}"
                ) from exc
        return found
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
