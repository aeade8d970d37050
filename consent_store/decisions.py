"""A decision with its recording: the one rule for which recording a decision shows, and its reads.

A recording is *completed* when its status (the body's `data.status`) is "completed"; every
read that asks whether a call's audio exists (exports, /audit/incomplete, `ivr recordings
sync`, the archive's fetch list) uses `completed_sql`. A decision shows its call's
archived recording (`recording_archived`) if any, else its latest completed `recording`
status if any, else its latest `recording` status (e.g. "absent"); `recording_sql` is that
lookup, the same SQL for both backends apart from the backend's `_json_text` hook.
`decision_row_from_record` decodes a decision and that recording into a DecisionRow.

SQLite's CSV fast path (consent_store.sqlite.export_sql) uses the same `recording_sql`. The
rule reads the idempotency key first, which ends with ":" + status (`RecordingStatus.to_event`;
`verify` holds the key to the hashed body), so the JSON is parsed only where it can match.
tests/test_store_decisions.py holds every read to the rule on hostile statuses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import orjson

from consent_store.chain import GENESIS_HASH
from consent_store.columns import decision_row_from_data
from consent_store.events import DecisionRow

COMPLETED = "completed"

# The backend's `_json_text(column, *path)` dialect hook.
JsonText = Callable[..., str]
# An export's `on_snapshot(seq, hash)`: told, before the first row, which record its read
# snapshot ends at and that record's hash (the genesis hash for record 0, None if the log
# holds no such record).
OnSnapshot = Callable[[int, str | None], None]
# One row of a read inside the caller's snapshot, or None (SQL with `?` placeholders).
FetchOne = Callable[[str, Sequence[Any]], Awaitable[Any]]

# The recording's idempotency key ends with ":" + its status (RecordingStatus.to_event).
_KEY_SUFFIX = ":" + COMPLETED


def completed_sql(json_text: JsonText, alias: str = "r") -> str:
    """SQL true when the `recording` event `alias` is a completed recording: its key ends with
    ":completed" (cheap: the JSON is parsed only where it can match) and its body's status is
    exactly "completed" (which refuses a look-alike status such as "x:completed")."""
    key = f"{alias}.idempotency_key LIKE '%{_KEY_SUFFIX}'"
    return f"{key} AND {json_text(f'{alias}.body', 'data', 'status')} = '{COMPLETED}'"


# How many times `recording_sql` uses its `head` placeholder.
RECORDING_HEADS = 3


def recording_sql(json_text: JsonText, value: str, head: str = "?") -> str:
    """SQL for `value` (an expression over `events r`) of decision `e`'s recording, NULL if
    none: archived, else the latest completed, else the latest status, among records up to
    `head` (a placeholder or expression, used RECORDING_HEADS times). Three lookups in
    index order (events_by_call), no sort."""

    def lookup(kind: str, condition: str = "") -> str:
        return (
            f"(SELECT {value} FROM events r WHERE r.call_sid = e.call_sid AND r.kind = '{kind}'"
            f" AND r.seq <= {head}{condition} ORDER BY r.seq DESC LIMIT 1)"
        )

    completed = f" AND {completed_sql(json_text)}"
    return (
        f"coalesce({lookup('recording_archived')}, {lookup('recording', completed)}, {lookup('recording')})"
    )


def heard_data(recording_body: str | bytes | None) -> Mapping[str, Any]:
    """The data of a decision's recording body ({} when it has none)."""
    if not recording_body:
        return {}
    data: Mapping[str, Any] = orjson.loads(recording_body)["data"]
    return data


def decision_row_from_record(
    seq: int,
    event: Sequence[Any],
    phone: str | None,
    body: str | bytes,
    recording_body: str | bytes | None,
) -> DecisionRow:
    """A decision's record (its event columns, body and caller's phone) with its recording's
    body (from `recording_sql`) as a DecisionRow. Raises ValueError, KeyError or TypeError on
    a record that cannot be read."""
    data = orjson.loads(body)["data"]
    return decision_row_from_data(seq, event, phone, data, heard_data(recording_body))


async def head_record(fetchone: FetchOne) -> tuple[int, str]:
    """The log's last record and its hash (record 0 and the genesis hash if it is empty)."""
    row = await fetchone("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1", ())
    return (0, GENESIS_HASH) if row is None else (int(row[0]), str(row[1]))


async def export_bound(
    fetchone: FetchOne, through_seq: int | None, head: tuple[int, str] | None = None
) -> tuple[int, str | None]:
    """The last record an export reads, and its hash (what `on_snapshot` is told): the
    snapshot's head (`head` if the caller read it already), or record `through_seq` (the
    genesis hash for record 0; None if the log holds no such record)."""
    if through_seq is None:
        return head if head is not None else await head_record(fetchone)
    if through_seq == 0:
        return 0, GENESIS_HASH
    row = await fetchone("SELECT hash FROM events WHERE seq = ?", (through_seq,))
    return through_seq, None if row is None else str(row[0])
