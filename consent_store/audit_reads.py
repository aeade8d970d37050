"""Reads auditors need: every event of a call, a record with its chain neighbours, and
decisions whose recording evidence is missing. Reads only; the SQL is shared by both
backends through their dialect hooks (`_json_text`, `_joined_text`)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from consent_store.backend import StoreBackend
from consent_store.chain import ChainRow
from consent_store.decisions import completed_sql
from consent_store.events import ExportFilter, Standing
from consent_store.queries import decision_filter
from consent_store.writing import utc_iso

_COLUMNS = ", ".join(ChainRow._fields)

# The latest opt-in or opt-out of a phone for a business: one indexed lookup (events_standing).
STANDING_SQL = (
    "SELECT e.action, e.recorded_at, e.seq, e.hash, e.body FROM subjects s"
    " JOIN events e ON e.subject = s.subject"
    " WHERE s.phone = ? AND e.business = ? AND e.kind = 'decision'"
    " AND e.action IN ('opt_in', 'opt_out') ORDER BY e.seq DESC LIMIT 1"
)


def standing_from_row(row: Sequence[Any] | None) -> Standing | None:
    """A row of STANDING_SQL as a Standing (None: no opt-in or opt-out on record)."""
    if row is None:
        return None
    data = json.loads(row[4])["data"]
    return Standing(row[0], row[1], row[2], row[3], tuple(data.get("message_types", ())))


@dataclass(frozen=True)
class ChainProof:
    """A record, the hash of the record before it, and the record after it that links to it."""

    record: ChainRow
    next_prev_hash: str | None
    head_seq: int
    head_hash: str


@dataclass(frozen=True)
class IncompleteEvidence:
    seq: int
    recorded_at: str
    call_sid: str
    business: str
    action: str
    reason: str


class AuditMixin(StoreBackend):
    """Mixed into both stores, which provide the `StoreBackend` reads and dialect hooks."""

    async def spoken_text(self, sha256: str) -> str | None:
        """The exact text a caller heard, by its SHA-256 (the decision's script_sha256)."""
        row = await self._fetchone("SELECT text FROM spoken_texts WHERE sha256 = ?", (sha256,))
        return None if row is None else str(row[0])

    async def count_decisions(self, where: ExportFilter) -> int:
        clause, params = decision_filter(where)
        row = await self._fetchone(f"SELECT count(*) FROM events e WHERE {clause}", params)
        return int(row[0])

    async def events_for_call(self, call_sid: str) -> list[ChainRow]:
        """Every event of one call (decision, recordings, call status), in chain order."""
        rows = await self._fetchall(
            f"SELECT {_COLUMNS} FROM events WHERE call_sid = ? ORDER BY seq", (call_sid,)
        )
        return [ChainRow(*row) for row in rows]

    async def chain_proof(self, seq: int) -> ChainProof | None:
        row = await self._fetchone(f"SELECT {_COLUMNS} FROM events WHERE seq = ?", (seq,))
        if row is None:
            return None
        following = await self._fetchone("SELECT prev_hash FROM events WHERE seq = ?", (seq + 1,))
        head = await self._fetchone("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")
        return ChainProof(ChainRow(*row), following[0] if following else None, int(head[0]), str(head[1]))

    async def incomplete_evidence(
        self, grace_minutes: int = 15, limit: int = 500
    ) -> list[IncompleteEvidence]:
        """Decisions with no completed recording: reported absent or failed, or none after the grace time."""
        cutoff = utc_iso(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=grace_minutes))
        status = self._json_text("r.body", "data", "status")
        # A decision with a channel was made by message or reported through the API: no recording.
        channel = self._json_text("e.body", "data", "channel")
        rows = await self._fetchall(
            "SELECT e.seq, e.recorded_at, e.call_sid, e.business, e.action,"
            f" (SELECT {self._joined_text(status, ', ', 'r.seq')} FROM events r"
            "  WHERE r.call_sid = e.call_sid AND r.kind = 'recording') AS statuses"
            f" FROM events e WHERE e.kind = 'decision' AND {channel} IS NULL AND NOT EXISTS ("
            "  SELECT 1 FROM events r WHERE r.call_sid = e.call_sid AND r.kind = 'recording'"
            f"  AND {completed_sql(self._json_text)})"
            " AND (e.recorded_at < ? OR EXISTS (SELECT 1 FROM events r WHERE r.call_sid = e.call_sid"
            "  AND r.kind = 'recording'))"
            " ORDER BY e.seq DESC LIMIT ?",
            (cutoff, limit),
        )
        return [
            IncompleteEvidence(
                seq,
                at,
                call_sid,
                business,
                action,
                f"recording {statuses}" if statuses else f"no recording after {grace_minutes} minutes",
            )
            for seq, at, call_sid, business, action, statuses in rows
        ]
