"""Which decisions still lack their recording, and what is known about why: the reads behind
`ivr recordings sync` (which calls to ask Twilio about) and /audit/incomplete (why each is
incomplete). Derived from the hash chain (recording callbacks, `recording_check` answers of
Twilio's Recordings list, `recording_archived` and `recording_deleted` events). Read-only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from consent_store.backend import StoreBackend
from consent_store.decisions import COMPLETED, completed_sql

# A recording in one of these states will not become a completed one: asking again is useless.
FINAL_OUTCOMES = ("absent", "failed", "deleted")


@dataclass(frozen=True)
class CallToReconcile:
    """A decision of a real call (not demo, not simulated) with no completed recording."""

    seq: int
    recorded_at: str
    call_sid: str
    business: str
    account_sid: str | None


@dataclass(frozen=True)
class RecordingReport:
    """One recording status a call's evidence holds (a callback, or found by reconciliation)."""

    recording_sid: str
    status: str
    error_code: str | None
    found_by: str
    recorded_at: str


@dataclass(frozen=True)
class RecordingGap:
    """A decision without archived audio, and what the log says about it."""

    seq: int
    recorded_at: str
    call_sid: str
    business: str
    action: str
    reports: tuple[RecordingReport, ...]  # recording callbacks and reconciled ones, oldest first
    check: str | None  # the latest answer of Twilio's list: "none", "absent", ... (None: not asked)
    check_error_code: str | None
    checked_at: str | None
    completed_sid: str | None  # a completed recording is known: what is missing is its fetch


def _data(body: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(body)["data"]
    return data


async def calls_to_reconcile(
    store: StoreBackend, before: str, since: str, limit: int = 1000
) -> list[CallToReconcile]:
    """Decisions recorded in [since, before) of real calls that have no completed recording and
    whose recording Twilio has not already called final (absent, failed, deleted), oldest first."""
    status = store._json_text("r.body", "data", "status")
    outcome = store._json_text("c.body", "data", "outcome")
    simulated = store._json_text("e.body", "data", "simulated")
    account = store._json_text("e.body", "data", "account_sid")
    # A decision with a channel was made by message or reported through the API: no call, no recording.
    channel = store._json_text("e.body", "data", "channel")
    finals = ", ".join(f"'{o}'" for o in FINAL_OUTCOMES)
    rows = await store._fetchall(
        f"SELECT e.seq, e.recorded_at, e.call_sid, e.business, {account} FROM events e"
        " JOIN businesses b ON b.name = e.business AND b.demo = 0"
        " WHERE e.kind = 'decision' AND e.recorded_at < ? AND e.recorded_at >= ?"
        f" AND {simulated} IS NULL AND {channel} IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM events r WHERE r.call_sid = e.call_sid AND r.kind = 'recording'"
        f"  AND ({completed_sql(store._json_text)} OR {status} IN ({finals})))"
        " AND NOT EXISTS (SELECT 1 FROM events c WHERE c.call_sid = e.call_sid AND c.kind = 'recording_check'"
        f"  AND {outcome} IN ({finals}))"
        " ORDER BY e.seq LIMIT ?",
        (before, since, limit),
    )
    return [CallToReconcile(seq, at, call_sid, business, acc) for seq, at, call_sid, business, acc in rows]


async def recording_gaps(
    store: StoreBackend,
    before: str,
    businesses: Sequence[str] | None = None,
    limit: int = 500,
) -> list[RecordingGap]:
    """Decisions recorded before `before` (or with a recording report) that have no archived
    recording, newest first, limited to `businesses` (None: all)."""
    limit_to = ""
    params: list[Any] = [before]
    if businesses is not None:
        if not businesses:
            return []
        limit_to = f" AND e.business IN ({', '.join('?' for _ in businesses)})"
        params += list(businesses)
    # A decision with a channel was made by message or reported through the API: no call, no recording.
    channel = store._json_text("e.body", "data", "channel")
    rows = await store._fetchall(
        "SELECT e.seq, e.recorded_at, e.call_sid, e.business, e.action FROM events e"
        f" WHERE e.kind = 'decision' AND {channel} IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM events a WHERE a.call_sid = e.call_sid"
        "  AND a.kind = 'recording_archived')"
        " AND (e.recorded_at < ? OR EXISTS (SELECT 1 FROM events r WHERE r.call_sid = e.call_sid"
        f"  AND r.kind IN ('recording', 'recording_check'))){limit_to}"
        " ORDER BY e.seq DESC LIMIT ?",
        [*params, limit],
    )
    if not rows:
        return []
    calls = [r[2] for r in rows]
    marks = ", ".join("?" for _ in calls)
    evidence = await store._fetchall(
        f"SELECT call_sid, kind, recorded_at, body FROM events WHERE call_sid IN ({marks})"
        " AND kind IN ('recording', 'recording_check') ORDER BY seq",
        calls,
    )
    reports: dict[str, list[RecordingReport]] = {c: [] for c in calls}
    checks: dict[str, tuple[str, str | None, str]] = {}
    for call_sid, kind, at, body in evidence:
        data = _data(body)
        if kind == "recording":
            code = data.get("error_code")
            reports[call_sid].append(
                RecordingReport(
                    str(data.get("recording_sid")),
                    str(data.get("status")),
                    None if code is None else str(code),
                    str(data.get("found_by") or "callback"),
                    at,
                )
            )
        else:
            code = data.get("error_code")
            checks[call_sid] = (str(data.get("outcome")), None if code is None else str(code), at)
    gaps = []
    for seq, at, call_sid, business, action in rows:
        check = checks.get(call_sid)
        completed = next((r.recording_sid for r in reports[call_sid] if r.status == COMPLETED), None)
        gaps.append(
            RecordingGap(
                seq,
                at,
                call_sid,
                business,
                action,
                tuple(reports[call_sid]),
                check[0] if check else None,
                check[1] if check else None,
                check[2] if check else None,
                completed,
            )
        )
    return gaps
