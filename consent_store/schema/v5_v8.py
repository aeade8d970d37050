"""Versions 5 to 8 of the schema: each version's SQLite and PostgreSQL DDL side by side.

Part of the one version sequence of consent_store/schema/__init__.py: append new versions
there (their DDL in the newest module of this package), never edit one that shipped.
DDL both backends run alike is written once (the blocks at the top) and placed into each
version's text; tests/test_schema_text.py holds every shipped version's text byte for byte.
"""

from __future__ import annotations

# -- DDL both backends run alike, placed where each backend's version runs it ------------------------

# Where to tell a business about opt-outs (version 5): {seq} is the type of a record number.
_OPT_OUT_WEBHOOKS = """CREATE TABLE opt_out_webhooks (
    business TEXT PRIMARY KEY REFERENCES businesses (name),
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    cursor_seq {seq} NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    updated_at TEXT NOT NULL
);
"""

# Every message status callback as Twilio reported it, once (version 7).
_MESSAGE_STATUSES = """CREATE TABLE message_statuses (
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
"""

# Each message's first report, and how the compliance check and delivery figures find it (version 7).
_MESSAGES = """CREATE TABLE messages (
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
"""

# -- version 5 -----------------------------------------------------------------------------------------

# Version 5: where to tell a business about opt-outs, and how far the telling got.
SQLITE_V5 = "\n" + _OPT_OUT_WEBHOOKS.format(seq="INTEGER")

# PostgreSQL (its own version 3 before the one sequence, which its version 1 had left out:
# every `ivr serve` on PostgreSQL logged that the table did not exist and sent no webhook).
POSTGRES_V5 = "\n" + _OPT_OUT_WEBHOOKS.format(seq="BIGINT")

# -- version 6 -----------------------------------------------------------------------------------------

# Version 6: an admin role, users and tokens limited to some businesses, and server-side web
# sessions (so sign-out, a password change or disabling a user ends every copy of a cookie).
SQLITE_V6 = """
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

# PostgreSQL (its own version 4 before the one sequence): the same.
POSTGRES_V6 = """
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

# -- version 7 -----------------------------------------------------------------------------------------

# Version 7: message status callbacks (POST /twilio/message-status), outside the hash chain:
# every status as Twilio reported it, once, and each message's first report (what the
# compliance check and the delivery figures read). Rows are never updated.
SQLITE_V7 = f"""
{_MESSAGE_STATUSES}CREATE TRIGGER message_statuses_no_update BEFORE UPDATE ON message_statuses
BEGIN SELECT RAISE(ABORT, 'message statuses are append-only: UPDATE refused'); END;
{_MESSAGES}CREATE TRIGGER messages_no_update BEFORE UPDATE ON messages
BEGIN SELECT RAISE(ABORT, 'message first reports are append-only: UPDATE refused'); END;
"""

# PostgreSQL (its own version 5 before the one sequence): the same.
POSTGRES_V7 = f"""
{_MESSAGE_STATUSES}{_MESSAGES}CREATE TRIGGER message_statuses_no_update BEFORE UPDATE ON message_statuses
    FOR EACH ROW EXECUTE FUNCTION consent_store_refuse_change();
CREATE TRIGGER messages_no_update BEFORE UPDATE ON messages
    FOR EACH ROW EXECUTE FUNCTION consent_store_refuse_change();
"""

# -- version 8 -----------------------------------------------------------------------------------------

# Version 8: what `ivr compliance` and the delivery figures read, from indexes alone: a
# business's opt-ins and opt-outs (with their time and action), and its messages by first report
# with their recipient.
SQLITE_V8 = """
CREATE INDEX events_decisions_by_business ON events (business, subject, seq, recorded_at, action)
    WHERE kind = 'decision' AND action IN ('opt_in', 'opt_out');
CREATE INDEX messages_by_business_first ON messages (business, first_at, to_number, message_sid);
DROP INDEX messages_by_business;
"""

# PostgreSQL (its own version 6 before the one sequence): the same DDL.
POSTGRES_V8 = SQLITE_V8
