"""Version 4 of the schema: API tokens on SQLite; on PostgreSQL, appends in one server-side step.

Part of the one version sequence of consent_store/schema/__init__.py: append new versions
there (their DDL in the newest module of this package), never edit one that shipped.
"""

from __future__ import annotations

from consent_store.schema.v1_v3 import API_TOKENS

# -- version 4 -----------------------------------------------------------------------------------------

# Version 4: bearer tokens of the sending systems that ask the consent-check API.
SQLITE_V4 = f"""
{API_TOKENS}"""

# PostgreSQL (its own version 2 before the one sequence): appends in one server-side step,
# so the chain_head lock is held for one statement and its commit, not across several
# client round trips: processes appending together no longer queue behind each other's
# network and Python time. PostgreSQL only: SQLite has one writing process and no server
# to run code in (its API tokens table is in PostgreSQL's version 1).
#
# The client sends each event's canonical body without its last three keys (a prefix
# ending in a comma; "business" < "call_sid" < "data" < "key" < "kind" sort before
# them). Under the lock the function appends "recorded_at" (the server's clock, so
# times rise with seq whichever process appends), "seq" and "subject", and hashes as
# consent_store/chain.py does: SHA-256 over the previous hash then the body, UTF-8.
# Keys already stored are not appended again; their rows come back marked duplicate.
POSTGRES_V4 = """
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
