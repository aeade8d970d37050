"""Versions 1 to 3 of the schema: each version's SQLite and PostgreSQL DDL side by side.

Part of the one version sequence of consent_store/schema/__init__.py: append new versions
there (their DDL in the newest module of this package), never edit one that shipped.
DDL both backends run alike is written once (the blocks at the top) and placed into each
version's text; tests/test_schema_text.py holds every shipped version's text byte for byte.
"""

from __future__ import annotations

from consent_store.chain import GENESIS_HASH

# -- DDL both backends run alike, placed where each backend's version runs it ------------------------

# The event log's columns after `seq` (SQLite's INTEGER, PostgreSQL's BIGINT).
_EVENT_COLUMNS = """    recorded_at TEXT NOT NULL,
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
"""

# The event log's indexes (the table's seq type differs).
_EVENT_INDEXES = """CREATE INDEX events_by_call ON events (call_sid, kind);
CREATE INDEX events_standing ON events (subject, business, seq)
    WHERE kind = 'decision' AND action IN ('opt_in', 'opt_out');
CREATE INDEX events_decisions_by_time ON events (recorded_at) WHERE kind = 'decision';
"""

# Phone numbers, apart from the chain: erasing one deletes its row here.
_SUBJECTS = """CREATE TABLE subjects (
    subject TEXT PRIMARY KEY,
    phone TEXT NOT NULL UNIQUE,
    salt TEXT NOT NULL
);
"""

# The texts a caller heard, by SHA-256.
_SPOKEN_TEXTS = """CREATE TABLE spoken_texts (
    sha256 TEXT PRIMARY KEY,
    text TEXT NOT NULL
);
"""

# Businesses, their numbers and scripts, settings.
_REGISTRY = """CREATE TABLE businesses (
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
"""

# People who sign in to the web pages, and scripts' unpublished drafts.
_USERS_AND_DRAFTS = """CREATE TABLE users (
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
"""

# Bearer tokens of the sending systems (also SQLite's version 4, consent_store/schema/v4.py).
API_TOKENS = """CREATE TABLE api_tokens (
    name TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
"""

# -- version 1 -----------------------------------------------------------------------------------------

# Version 1: the event log, subjects, spoken texts, businesses, numbers, scripts, settings.
SQLITE_V1 = f"""
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
{_EVENT_COLUMNS}{_EVENT_INDEXES}CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'consent events are append-only: UPDATE refused'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'consent events are append-only: DELETE refused'); END;

{_SUBJECTS}
{_SPOKEN_TEXTS}CREATE TRIGGER spoken_texts_no_update BEFORE UPDATE ON spoken_texts
BEGIN SELECT RAISE(ABORT, 'spoken texts are append-only: UPDATE refused'); END;

{_REGISTRY}"""

# PostgreSQL's version 1 held everything of SQLite's versions 1 to 4 at once, and the chain
# head row (SQLite keeps the head in a file beside the database).
POSTGRES_V1 = f"""
CREATE TABLE events (
    seq BIGINT PRIMARY KEY,
{_EVENT_COLUMNS}{_EVENT_INDEXES}
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
{_SUBJECTS}{_SPOKEN_TEXTS}{_REGISTRY}{_USERS_AND_DRAFTS}{API_TOKENS}
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

# -- version 2 -----------------------------------------------------------------------------------------

# Version 2: periodic chain checkpoints, so deleting records at the tail is detected.
SQLITE_V2 = """
CREATE TABLE checkpoints (
    seq INTEGER PRIMARY KEY,
    hash TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only: UPDATE refused'); END;
CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only: DELETE refused'); END;
INSERT INTO checkpoints (seq, hash, recorded_at)
    SELECT seq, hash, recorded_at FROM events ORDER BY seq DESC LIMIT 1;
"""

# PostgreSQL: nothing (its version 1 already held these tables).
POSTGRES_V2 = ""

# -- version 3 -----------------------------------------------------------------------------------------

# Version 3: people who sign in to the web pages, and scripts' unpublished drafts.
SQLITE_V3 = f"""
{_USERS_AND_DRAFTS}"""

# PostgreSQL: nothing (its version 1 already held these tables).
POSTGRES_V3 = ""
