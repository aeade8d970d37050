"""The recording archive in the log: what is still to fetch, and what was archived.

Nothing here is kept outside the chain: the recordings still to fetch are derived from
the log (completed `recording` events with no `recording_archived` event for their
RecordingSid), so a crash or a restart loses nothing. Shared by both backends (portable
SQL; JSON through the backend's `_json_text`). Appends only.
"""

from __future__ import annotations

from typing import Any

from consent_store.backend import StoreBackend
from consent_store.decisions import completed_sql
from consent_store.events import (
    ArchivedRecording,
    RecordingArchived,
    RecordingToFetch,
    StoredEvent,
)


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


class RecordingArchiveMixin(StoreBackend):
    """Mixed into both stores (through CallLogMixin), which provide the `StoreBackend` primitives."""

    async def record_archived(self, archived: RecordingArchived) -> StoredEvent:
        """Chain a recording kept in the archive; a repeat for the same RecordingSid returns the first."""
        return await self._append(archived.to_event())

    async def recordings_to_fetch(self, after_seq: int = 0, limit: int = 500) -> list[RecordingToFetch]:
        """Completed recordings after record `after_seq` not yet archived, oldest first."""
        data = "r.body"
        sid = self._json_text(data, "data", "recording_sid")
        rows = await self._fetchall(
            f"SELECT r.seq, r.call_sid, {sid}, {self._json_text(data, 'data', 'url')},"
            f" {self._json_text(data, 'data', 'duration')} FROM events r"
            f" WHERE r.seq > ? AND r.kind = 'recording' AND {completed_sql(self._json_text)}"
            " AND NOT EXISTS (SELECT 1 FROM events a"
            f"  WHERE a.idempotency_key = 'recording_archived:' || {sid})"
            " ORDER BY r.seq LIMIT ?",
            (after_seq, limit),
        )
        return [
            RecordingToFetch(int(seq), str(call_sid), str(recording_sid), url, _int_or_none(duration))
            for seq, call_sid, recording_sid, url, duration in rows
        ]

    async def archived_recordings(
        self, after_seq: int = 0, limit: int = 1000, call_sid: str | None = None
    ) -> list[ArchivedRecording]:
        """`recording_archived` events after record `after_seq` (of one call if given), oldest first."""
        fields = ", ".join(
            self._json_text("body", "data", key)
            for key in ("recording_sid", "sha256", "bytes", "media_type", "duration", "location", "found_by")
        )
        where, params = "seq > ? AND kind = 'recording_archived'", [after_seq]
        if call_sid is not None:
            where, params = where + " AND call_sid = ?", [after_seq, call_sid]  # type: ignore[list-item]
        rows = await self._fetchall(
            f"SELECT seq, recorded_at, call_sid, {fields} FROM events WHERE {where} ORDER BY seq LIMIT ?",
            (*params, limit),
        )
        return [
            ArchivedRecording(
                seq=int(seq),
                recorded_at=str(at),
                call_sid=str(call),
                recording_sid=str(recording_sid),
                sha256=str(sha256),
                bytes=int(size),
                media_type=str(media_type),
                duration=_int_or_none(duration),
                location=str(location),
                found_by=str(found_by),
            )
            for seq, at, call, recording_sid, sha256, size, media_type, duration, location, found_by in rows
        ]

    async def archived_count(self) -> int:
        """How many recordings were archived (`recording_archived` events)."""
        rows = await self._fetchall("SELECT count(*) FROM events WHERE kind = 'recording_archived'")
        return int(rows[0][0])

    async def archived_recording(self, call_sid: str) -> ArchivedRecording | None:
        """The call's archived recording (the latest, if Twilio made several), or None."""
        found = await self.archived_recordings(call_sid=call_sid, limit=1000)
        return found[-1] if found else None

    async def deleted_recordings(self) -> dict[str, str]:
        """RecordingSid -> why, for every recording whose archived audio was deleted on purpose
        (`recording_deleted` events with where "archive": erasure, retention)."""
        rows = await self._fetchall(
            f"SELECT {self._json_text('body', 'data', 'recording_sid')},"
            f" {self._json_text('body', 'data', 'reason')} FROM events"
            f" WHERE kind = 'recording_deleted' AND {self._json_text('body', 'data', 'where')} = 'archive'"
        )
        return {str(sid): str(reason or "deleted") for sid, reason in rows if sid}
