"""The SHA-256 hash chain over consent events.

Each event is serialised canonically (JSON, keys sorted, no spaces, UTF-8,
non-ASCII kept as is) and its hash is SHA-256 over the previous event's hash
(64 lowercase hex characters; 64 zeros for the first event) followed by that
body. Anyone can re-check a chain with these two functions' rules alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import orjson

from consent_store.events import NewEvent, VerifyResult

GENESIS_HASH = "0" * 64


def canonical_json(value: Mapping[str, Any]) -> str:
    """Serialise a mapping the one way the chain hashes it.

    Byte for byte the same as json.dumps(value, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False) (a property test holds it to that), several times faster.
    """
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode("utf-8")


def event_hash(prev_hash: str, body: str) -> str:
    """SHA-256 (hex) of the previous hash followed by this event's canonical body."""
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ChainRow(NamedTuple):
    """An event row as read back from storage, columns beside the hashed body."""

    seq: int
    recorded_at: str
    kind: str
    idempotency_key: str
    call_sid: str | None
    business: str | None
    subject: str | None
    action: str | None
    body: str
    prev_hash: str
    hash: str


def chain_event(event: NewEvent, seq: int, prev_hash: str, recorded_at: str, subject: str | None) -> ChainRow:
    """The row an event becomes at position `seq` after `prev_hash`: its canonical body and hash.

    The SQLite writer (and the benchmark filler) build rows through this. PostgreSQL builds
    the same body in SQL: the process sends it up to `recorded_at` (`postgres.writer.
    body_prefix`) and `consent_store_append` adds the last three keys, so a change to the
    body's top-level keys must change both (tests/test_postgres_append.py holds them equal)."""
    body = canonical_json(
        {
            "seq": seq,
            "recorded_at": recorded_at,
            "kind": event.kind,
            "key": event.idempotency_key,
            "call_sid": event.call_sid,
            "business": event.business,
            "subject": subject,
            "data": dict(event.fields),
        }
    )
    return ChainRow(
        seq,
        recorded_at,
        event.kind,
        event.idempotency_key,
        event.call_sid,
        event.business,
        subject,
        event.action,
        body,
        prev_hash,
        event_hash(prev_hash, body),
    )


_COLUMN_FIELDS = ("seq", "recorded_at", "kind", "call_sid", "business", "subject")


def _row_problem(row: ChainRow, expected_seq: int, prev_hash: str) -> str | None:
    """Why a row breaks the chain (None if it does not): the slow, explaining path."""
    if row.seq != expected_seq:
        return f"expected record {expected_seq} next but found {row.seq} (record missing or inserted)"
    if row.prev_hash != prev_hash:
        return "its previous-hash does not match the record before it"
    if event_hash(prev_hash, row.body) != row.hash:
        return "its content does not match its hash (edited)"
    try:
        body = orjson.loads(row.body)
    except orjson.JSONDecodeError:
        return "its body is not valid JSON"
    for name in _COLUMN_FIELDS:
        if body.get(name) != getattr(row, name):
            return f"its {name} column differs from the hashed record (edited)"
    if body.get("key") != row.idempotency_key:
        return "its idempotency key differs from the hashed record (edited)"
    data = body.get("data")
    if not isinstance(data, dict) or data.get("action") != row.action:
        return "its action column differs from the hashed record (edited)"
    return None


def _row_is_sound(row: Sequence[Any], expected_seq: int, prev_hash: str) -> bool:
    """The fast path of `_row_problem`: the same checks, no explanation."""
    seq, recorded_at, kind, key, call_sid, business, subject, action, body, row_prev, digest = row
    if seq != expected_seq or row_prev != prev_hash:
        return False
    if hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest() != digest:
        return False
    try:
        hashed = orjson.loads(body)
        data = hashed["data"]
        return (
            hashed["seq"],
            hashed["recorded_at"],
            hashed["kind"],
            hashed["key"],
            hashed["call_sid"],
            hashed["business"],
            hashed["subject"],
            data.get("action"),
        ) == (seq, recorded_at, kind, key, call_sid, business, subject, action)
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return False


def verify_rows(rows: Iterable[Sequence[Any]]) -> VerifyResult:
    """Re-compute the chain over rows in sequence order; stop at the first bad one."""
    verifier = ChainVerifier()
    verifier.feed(rows)
    return verifier.result()


class ChainVerifier:
    """Incremental form of `verify_rows`, for rows arriving in batches (streaming).

    `anchors` are (seq -> hash) pairs known from elsewhere (checkpoints, the head
    file): the chain must pass through each of them, so a deleted tail shows.
    """

    def __init__(
        self,
        anchors: Mapping[int, str] | None = None,
        warnings: Iterable[str] = (),
        first_seq: int = 1,
        prev_hash: str | None = GENESIS_HASH,
    ) -> None:
        # prev_hash None: a slice of a longer chain; its first link is checked by whoever joins slices.
        self.first_seq = first_seq
        self.first_prev_hash = prev_hash
        self.prev_hash = prev_hash or ""
        self.count = 0
        self.failure: VerifyResult | None = None
        self.anchors = dict(anchors or {})
        self.warnings = tuple(warnings)

    def feed(self, rows: Iterable[Sequence[Any]]) -> bool:
        """Check more rows (ChainRow fields in order); False once a bad row has been found."""
        if self.failure is not None:
            return False
        anchors = self.anchors
        for raw in rows:
            if self.first_prev_hash is None and self.count == 0:
                self.prev_hash = self.first_prev_hash = raw[9]
            expected = self.first_seq + self.count
            if _row_is_sound(raw, expected, self.prev_hash) and anchors.get(raw[0], raw[10]) == raw[10]:
                self.prev_hash = raw[10]
                self.count += 1
                continue
            row = ChainRow(*raw)
            problem = _row_problem(row, expected, self.prev_hash)
            if problem is None:
                problem = "its hash differs from the checkpoint recorded for it (rewritten)"
            if problem is not None:
                self.failure = VerifyResult(
                    count=self.count,
                    head=self.prev_hash,
                    first_bad_seq=row.seq,
                    problem=problem,
                    warnings=self.warnings,
                )
                return False
        return True

    def result(self) -> VerifyResult:
        if self.failure is not None:
            return self.failure
        return tail_check(
            VerifyResult(count=self.count, head=self.prev_hash, warnings=self.warnings), self.anchors
        )


def tail_check(result: VerifyResult, anchors: Mapping[int, str]) -> VerifyResult:
    """An intact chain must still reach its furthest anchor, or its tail was deleted."""
    reached = max(anchors, default=0)
    if not result.intact or reached <= result.count:
        return result
    return VerifyResult(
        count=result.count,
        head=result.head,
        first_bad_seq=result.count + 1,
        problem=f"records {result.count + 1} to {reached} are missing: the chain was "
        f"checkpointed at record {reached} but ends at {result.count} (tail deleted)",
        warnings=result.warnings,
    )
