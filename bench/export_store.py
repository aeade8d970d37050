"""The store `python -m bench export` exports: recordings added to a filled store, and its size.

`bench.fill.fill_store` writes decisions only; a real log also holds each call's
recording status, which every exported row looks up. `append_recordings` appends
one, chained exactly as the writer would (canonical body, hash over the previous
hash, a checkpoint every CHECKPOINT_EVERY records, the head file), so the store
still passes `verify`.
"""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

from consent_store import RecordingStatus, canonical_json, event_hash
from consent_store.writing import CHECKPOINT_EVERY

_CHUNK = 20_000  # events handed to executemany at a time


def append_recordings(path: Path, seed: int) -> int:
    """Append a 'completed' recording event, correctly chained, for every decision in the store."""
    rng = random.Random(seed ^ 0x2EC)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        head_seq, head_hash = conn.execute(
            "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        calls = [sid for (sid,) in conn.execute("SELECT call_sid FROM events WHERE kind = 'decision'")]
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("BEGIN")
        events: list[tuple[object, ...]] = []
        checkpoints: list[tuple[int, str, str]] = []
        recorded_at = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        for call_sid in calls:
            recording_sid = f"RE{rng.getrandbits(128):032x}"
            event = RecordingStatus(
                call_sid=call_sid,
                recording_sid=recording_sid,
                status="completed",
                url=f"https://api.twilio.com/2010-04-01/Accounts/AC{'0' * 32}/Recordings/{recording_sid}",
                duration=rng.randrange(20, 90),
            ).to_event()
            head_seq += 1
            body = canonical_json(
                {
                    "seq": head_seq,
                    "recorded_at": recorded_at,
                    "kind": event.kind,
                    "key": event.idempotency_key,
                    "call_sid": event.call_sid,
                    "business": None,
                    "subject": None,
                    "data": dict(event.fields),
                }
            )
            digest = event_hash(head_hash, body)
            events.append(
                (head_seq, recorded_at, event.kind, event.idempotency_key, call_sid, None, None, None)
                + (body, head_hash, digest)
            )
            head_hash = digest
            if head_seq % CHECKPOINT_EVERY == 0:
                checkpoints.append((head_seq, digest, recorded_at))
            if len(events) >= _CHUNK:
                _insert(conn, events, checkpoints)
                events, checkpoints = [], []
        checkpoints.append((head_seq, head_hash, recorded_at))
        _insert(conn, events, checkpoints)
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()
    head_file = path.with_name(path.name + ".chainhead")
    head_file.write_text(f'{{"seq": {head_seq}, "hash": "{head_hash}"}}')
    return len(calls)


def _insert(
    conn: sqlite3.Connection, events: list[tuple[object, ...]], checkpoints: list[tuple[int, str, str]]
) -> None:
    conn.executemany(
        "INSERT INTO events (seq, recorded_at, kind, idempotency_key, call_sid, business,"
        " subject, action, body, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        events,
    )
    conn.executemany(
        "INSERT OR IGNORE INTO checkpoints (seq, hash, recorded_at) VALUES (?, ?, ?)", checkpoints
    )


def describe_store(db: Path) -> tuple[int, int, int]:
    """Decisions, recording events and phones in the database (none of them demo)."""
    conn = sqlite3.connect(db)
    try:
        [(decisions, recordings)] = conn.execute(
            "SELECT sum(kind = 'decision'), sum(kind = 'recording') FROM events"
        ).fetchall()
        [(phones,)] = conn.execute("SELECT count(*) FROM subjects").fetchall()
        [(demo,)] = conn.execute("SELECT count(*) FROM businesses WHERE demo = 1").fetchall()
    finally:
        conn.close()
    if demo:
        raise SystemExit(f"{db} has demo businesses: their decisions are not exported by default")
    return int(decisions or 0), int(recordings or 0), int(phones)
