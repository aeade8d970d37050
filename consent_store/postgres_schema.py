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

# Version 2: appends in one server-side step, so the chain_head lock is held for one
# statement and its commit, not across several client round trips: processes
# appending together no longer queue behind each other's network and Python time.
# PostgreSQL only: SQLite has one writing process and no server to run code in, and
# the two backends count their versions independently (version 1 here already held
# everything of SQLite's versions 1 to 4), so no SQLite version matches this one.
#
# The client sends each event's canonical body without its last three keys (a prefix
# ending in a comma; "business" < "call_sid" < "data" < "key" < "kind" sort before
# them). Under the lock the function appends "recorded_at" (the server's clock, so
# times rise with seq whichever process appends), "seq" and "subject", and hashes as
# consent_store/chain.py does: SHA-256 over the previous hash then the body, UTF-8.
# Keys already stored are not appended again; their rows come back marked duplicate.
_V2 = """
-- Before the chain lock, to keep it short. Subjects are keyed by phone and spoken texts
-- by their hash, so the first to insert one wins; its inserter may make another wait
-- here, but whoever holds the chain lock does not wait for these rows (every appender
-- inserts them before locking, phones and hashes sorted), so there is no deadlock.
CREATE FUNCTION consent_store_add_subjects_and_texts(
    new_phones TEXT[], new_subjects TEXT[], new_salts TEXT[], text_hashes TEXT[], texts TEXT[]
) RETURNS void LANGUAGE sql AS $$
    INSERT INTO subjects (subject, phone, salt)
        SELECT * FROM unnest(new_subjects, new_phones, new_salts) ON CONFLICT (phone) DO NOTHING;
    INSERT INTO spoken_texts (sha256, text)
        SELECT * FROM unnest(text_hashes, texts) ON CONFLICT (sha256) DO NOTHING;
$$;

CREATE FUNCTION consent_store_append(
    keys TEXT[], kinds TEXT[], call_sids TEXT[], businesses TEXT[], actions TEXT[],
    body_prefixes TEXT[], phones TEXT[], new_phones TEXT[], new_subjects TEXT[], new_salts TEXT[],
    text_hashes TEXT[], texts TEXT[], checkpoint_every BIGINT, record_times TEXT[] DEFAULT NULL
) RETURNS TABLE (
    idempotency_key TEXT, seq BIGINT, recorded_at TEXT, kind TEXT, body TEXT, prev_hash TEXT,
    hash TEXT, duplicate BOOLEAN
) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    head_seq BIGINT;
    head_hash TEXT;
    next_seq BIGINT;
    known TEXT[];
    subjects_of TEXT[];
    stamp TEXT;
    line TEXT;
    digest TEXT;
    appended INTEGER := 0;
    at_seq BIGINT[] := '{}';
    at_time TEXT[] := '{}';
    at_body TEXT[] := '{}';
    at_prev TEXT[] := '{}';
    at_hash TEXT[] := '{}';
    at_event INTEGER[] := '{}';
BEGIN
    PERFORM consent_store_add_subjects_and_texts(new_phones, new_subjects, new_salts, text_hashes, texts);
    -- The lock every appender takes, in every process; held to COMMIT.
    SELECT h.seq, h.hash INTO head_seq, head_hash FROM chain_head h WHERE h.id = 1 FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the chain_head row is missing: run ivr verify';
    END IF;
    -- Read under the lock, after any erasure appended before us (erasures hold the lock
    -- too). A subquery per phone: one index probe each, never a scan of every subject.
    SELECT array_agg((SELECT s.subject FROM subjects s WHERE s.phone = p.phone) ORDER BY p.n)
        INTO subjects_of FROM unnest(phones) WITH ORDINALITY AS p(phone, n);
    IF cardinality(array_remove(subjects_of, NULL)) < cardinality(array_remove(phones, NULL)) THEN
        -- A phone erased between the insert above and the lock gets a new subject. Rare:
        -- this may wait for a caller of the same phone that waits for our lock, a deadlock
        -- PostgreSQL breaks by failing one group, whose callers hear "not recorded".
        INSERT INTO subjects (subject, phone, salt)
            SELECT * FROM unnest(new_subjects, new_phones, new_salts) ON CONFLICT (phone) DO NOTHING;
        SELECT array_agg((SELECT s.subject FROM subjects s WHERE s.phone = p.phone) ORDER BY p.n)
            INTO subjects_of FROM unnest(phones) WITH ORDINALITY AS p(phone, n);
    END IF;
    SELECT COALESCE(array_agg(e.idempotency_key), '{}') INTO known
        FROM events e WHERE e.idempotency_key = ANY(keys);
    next_seq := head_seq;
    FOR i IN 1 .. COALESCE(cardinality(keys), 0) LOOP
        CONTINUE WHEN keys[i] = ANY(known);
        next_seq := next_seq + 1;
        -- The server's clock; `record_times` only where a test sets the writer's clock.
        stamp := COALESCE(
            record_times[i], to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
        );
        line := body_prefixes[i] || '"recorded_at":"' || stamp || '","seq":' || next_seq::text
            || ',"subject":' || COALESCE('"' || subjects_of[i] || '"', 'null') || '}';
        digest := encode(sha256(convert_to(head_hash || line, 'UTF8')), 'hex');
        appended := appended + 1;
        at_seq[appended] := next_seq;
        at_time[appended] := stamp;
        at_body[appended] := line;
        at_prev[appended] := head_hash;
        at_hash[appended] := digest;
        at_event[appended] := i;
        head_hash := digest;
    END LOOP;
    IF appended > 0 THEN
        INSERT INTO events (seq, recorded_at, kind, idempotency_key, call_sid, business, subject,
                            action, body, prev_hash, hash)
            SELECT a.seq, a.at, kinds[a.i], keys[a.i], call_sids[a.i], businesses[a.i],
                   subjects_of[a.i], actions[a.i], a.body, a.prev, a.hash
            FROM unnest(at_seq, at_time, at_body, at_prev, at_hash, at_event)
                AS a(seq, at, body, prev, hash, i);
        IF head_seq / checkpoint_every <> next_seq / checkpoint_every THEN
            INSERT INTO checkpoints (seq, hash, recorded_at)
                VALUES (next_seq, head_hash, at_time[appended]);
        END IF;
        UPDATE chain_head SET seq = next_seq, hash = head_hash WHERE id = 1;
    END IF;
    RETURN QUERY
        SELECT keys[a.i], a.seq, a.at, kinds[a.i], a.body, a.prev, a.hash, false
            FROM unnest(at_seq, at_time, at_body, at_prev, at_hash, at_event)
                AS a(seq, at, body, prev, hash, i)
        UNION ALL
        SELECT e.idempotency_key, e.seq, e.recorded_at, e.kind, e.body, e.prev_hash, e.hash, true
            FROM events e WHERE e.idempotency_key = ANY(known);
END;
$$;
"""

# Version 3: the opt-out webhooks of SQLite's version 5, which version 1 left out (every
# `ivr serve` on PostgreSQL logged that the table did not exist and sent no webhook).
_V3 = """
CREATE TABLE opt_out_webhooks (
    business TEXT PRIMARY KEY REFERENCES businesses (name),
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    cursor_seq BIGINT NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    updated_at TEXT NOT NULL
);
"""

# Version 4 (SQLite's version 6): an admin role, users and tokens limited to some businesses,
# and server-side web sessions.
_V4 = """
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('admin', 'manager', 'auditor'));
ALTER TABLE users ADD COLUMN businesses TEXT;
ALTER TABLE users ADD COLUMN last_sign_in TEXT;
ALTER TABLE api_tokens ADD COLUMN businesses TEXT;
CREATE TABLE web_sessions (
    id_sha256 TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    ended_at BIGINT
);
CREATE INDEX web_sessions_user ON web_sessions (user_name);
"""

# Version 5 (SQLite's version 7): message status callbacks, outside the hash chain: every
# status once, and each message's first report. Rows are never updated.
_V5 = """
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
CREATE TRIGGER message_statuses_no_update BEFORE UPDATE ON message_statuses
    FOR EACH ROW EXECUTE FUNCTION consent_store_refuse_change();
CREATE TRIGGER messages_no_update BEFORE UPDATE ON messages
    FOR EACH ROW EXECUTE FUNCTION consent_store_refuse_change();
"""

# Version 6 (SQLite's version 8): the indexes `ivr compliance` and the delivery figures read.
_V6 = """
CREATE INDEX events_decisions_by_business ON events (business, subject, seq, recorded_at, action)
    WHERE kind = 'decision' AND action IN ('opt_in', 'opt_out');
CREATE INDEX messages_by_business_first ON messages (business, first_at, to_number, message_sid);
DROP INDEX messages_by_business;
"""

# Each entry upgrades the schema from version i to i + 1; append, never edit.
MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5, _V6)
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
