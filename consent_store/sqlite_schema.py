"""SQLite schema and its migrations, versioned with PRAGMA user_version.

Opening an older database upgrades it step by step; a newer one is refused.
The event table refuses UPDATE and DELETE with triggers.
"""

from __future__ import annotations

import sqlite3

import aiosqlite

from consent_store.exceptions import SchemaTooNew, StoreUnavailable

_V1 = """
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
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
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'consent events are append-only: UPDATE refused'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'consent events are append-only: DELETE refused'); END;

CREATE TABLE subjects (
    subject TEXT PRIMARY KEY,
    phone TEXT NOT NULL UNIQUE,
    salt TEXT NOT NULL
);

CREATE TABLE spoken_texts (
    sha256 TEXT PRIMARY KEY,
    text TEXT NOT NULL
);
CREATE TRIGGER spoken_texts_no_update BEFORE UPDATE ON spoken_texts
BEGIN SELECT RAISE(ABORT, 'spoken texts are append-only: UPDATE refused'); END;

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
"""

# Version 2: periodic chain checkpoints, so deleting records at the tail is detected.
_V2 = """
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

# Version 3: people who sign in to the web pages, and scripts' unpublished drafts.
_V3 = """
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
"""

# Version 4: bearer tokens of the sending systems that ask the consent-check API.
_V4 = """
CREATE TABLE api_tokens (
    name TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
"""

# Version 5: where to tell a business about opt-outs, and how far the telling got.
_V5 = """
CREATE TABLE opt_out_webhooks (
    business TEXT PRIMARY KEY REFERENCES businesses (name),
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    cursor_seq INTEGER NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    updated_at TEXT NOT NULL
);
"""

# Version 6: an admin role, users and tokens limited to some businesses, and server-side web
# sessions (so sign-out, a password change or disabling a user ends every copy of a cookie).
_V6 = """
CREATE TABLE users_v6 (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('admin', 'manager', 'auditor')),
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    businesses TEXT,
    last_sign_in TEXT
);
INSERT INTO users_v6 (name, role, password_hash, created_at, disabled)
    SELECT name, role, password_hash, created_at, disabled FROM users;
DROP TABLE users;
ALTER TABLE users_v6 RENAME TO users;
ALTER TABLE api_tokens ADD COLUMN businesses TEXT;
CREATE TABLE web_sessions (
    id_sha256 TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    ended_at INTEGER
);
CREATE INDEX web_sessions_user ON web_sessions (user_name);
"""

# Version 7: message status callbacks (POST /twilio/message-status), outside the hash chain:
# every status as Twilio reported it, once, and each message's first report (what the
# compliance check and the delivery figures read). Rows are never updated.
_V7 = """
CREATE TABLE message_statuses (
    message_sid TEXT NOT NULL,
    status TEXT NOT NULL,
    error_code INTEGER,
    to_number TEXT NOT NULL,
    from_number TEXT NOT NULL,
    channel TEXT NOT NULL,
    account_sid TEXT,
    business TEXT,
    received_at TEXT NOT NULL,
    PRIMARY KEY (message_sid, status)
);
CREATE TRIGGER message_statuses_no_update BEFORE UPDATE ON message_statuses
BEGIN SELECT RAISE(ABORT, 'message statuses are append-only: UPDATE refused'); END;
CREATE TABLE messages (
    message_sid TEXT PRIMARY KEY,
    business TEXT,
    to_number TEXT NOT NULL,
    from_number TEXT NOT NULL,
    channel TEXT NOT NULL,
    first_status TEXT NOT NULL,
    first_at TEXT NOT NULL
);
CREATE INDEX messages_by_business ON messages (business, first_at);
CREATE INDEX messages_by_recipient ON messages (to_number, business, first_at);
CREATE TRIGGER messages_no_update BEFORE UPDATE ON messages
BEGIN SELECT RAISE(ABORT, 'message first reports are append-only: UPDATE refused'); END;
"""

# Version 8: what `ivr compliance` and the delivery figures read, from indexes alone: a
# business's opt-ins and opt-outs (with their time and action), and its messages by first report
# with their recipient.
_V8 = """
CREATE INDEX events_decisions_by_business ON events (business, subject, seq, recorded_at, action)
    WHERE kind = 'decision' AND action IN ('opt_in', 'opt_out');
CREATE INDEX messages_by_business_first ON messages (business, first_at, to_number, message_sid);
DROP INDEX messages_by_business;
"""

# Each entry upgrades the schema from version i to i + 1.
MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8)
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
