"""The recording evidence of a call as chained events: status callbacks, archiving, deletion, holds, checks.

Plain frozen dataclasses; they never talk to a database. consent_store/events.py re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from consent_store.event_base import EventKind, NewEvent, given


def _body_fields(record: Any) -> dict[str, Any]:
    """Every field of a recording record but its call_sid (the event's own column), for its
    body: the chain sorts the keys, so the body's bytes do not depend on the fields' order."""
    return {f.name: getattr(record, f.name) for f in fields(record) if f.name != "call_sid"}


def _call_event(record: Any, kind: EventKind, idempotency_key: str) -> NewEvent:
    """A recording record of a call as its event: the call's column and the other fields' body."""
    return NewEvent(
        kind=kind, idempotency_key=idempotency_key, call_sid=record.call_sid, fields=_body_fields(record)
    )


@dataclass(frozen=True)
class RecordingStatus:
    """A recording status callback: the audio evidence of a call."""

    call_sid: str
    recording_sid: str
    status: str
    url: str | None
    duration: int | None
    # "reconciliation": found by asking Twilio's Recordings list (`ivr recordings sync`), not by a
    # callback; Twilio's ErrorCode of an absent or failed recording. Only in the body when set, so
    # a callback's record keeps the body (and hash) it always had.
    found_by: str | None = None
    error_code: str | None = None

    def to_event(self) -> NewEvent:
        fields: dict[str, Any] = {
            "recording_sid": self.recording_sid,
            "status": self.status,
            "url": self.url,
            "duration": self.duration,
            **given(found_by=self.found_by, error_code=self.error_code),
        }
        return NewEvent(
            kind="recording",
            idempotency_key=f"recording:{self.call_sid}:{self.recording_sid}:{self.status}",
            call_sid=self.call_sid,
            fields=fields,
        )


# How an archived recording was found: its status callback, or `ivr recordings sync` asking Twilio.
FoundBy = Literal["callback", "reconciliation"]


@dataclass(frozen=True)
class ArchiveEntry:
    """What the recording archive holds of one call's recording: the file (SHA-256, size, media
    type, `location`: the archive's URL and the file's place in it) and what Twilio said of it."""

    call_sid: str
    recording_sid: str
    sha256: str
    bytes: int
    media_type: str
    duration: int | None
    location: str


@dataclass(frozen=True)
class RecordingArchived(ArchiveEntry):
    """A call's recording fetched from Twilio and kept in the recording archive, by SHA-256.

    Appended only once the bytes are durable in the archive. `url` is the RecordingUrl Twilio
    gave (None if not known).
    """

    found_by: FoundBy
    url: str | None = None

    def to_event(self) -> NewEvent:
        return _call_event(self, "recording_archived", f"recording_archived:{self.recording_sid}")


@dataclass(frozen=True)
class RecordingToFetch:
    """A completed recording with no `recording_archived` event yet (derived from the log)."""

    seq: int
    call_sid: str
    recording_sid: str
    url: str | None
    duration: int | None


@dataclass(frozen=True, kw_only=True)
class ArchivedRecording(ArchiveEntry):
    """A call's archived recording, as its `recording_archived` event (record `seq`) says."""

    seq: int
    recorded_at: str
    found_by: str


# Where a recording's audio was deleted, and why: an erasure request (`ivr forget`), the
# business's retention period (`ivr recordings purge`), or at Twilio once it was archived.
DeletedWhere = Literal["archive", "twilio"]
DeletedReason = Literal["erasure", "purge", "archived"]


@dataclass(frozen=True)
class RecordingDeleted:
    """A recording's audio deleted from the archive or at Twilio. Its SHA-256 stays in the chain,
    so the decision and the `recording_archived` event still verify; `ivr verify` does not count
    a recording deleted from the archive as missing."""

    call_sid: str
    recording_sid: str
    sha256: str | None
    where: DeletedWhere
    reason: DeletedReason
    author: str

    def to_event(self) -> NewEvent:
        return _call_event(self, "recording_deleted", f"recording_deleted:{self.recording_sid}:{self.where}")


@dataclass(frozen=True)
class LegalHold:
    """A legal hold placed (held) or released on a caller's phone or a whole business: while it
    holds, `ivr recordings purge` keeps the audio and `ivr forget` refuses. The phone is kept
    outside the chain like a decision's (a salted commitment in the chain)."""

    held: bool
    author: str
    reason: str
    at: str  # when it was asked for (UTC), so holding again after a release is a new record
    phone: str | None = None
    business: str | None = None

    def to_event(self) -> NewEvent:
        target = "phone" if self.phone is not None else "business"
        return NewEvent(
            kind="legal_hold",
            idempotency_key=f"legal_hold:{target}:{self.business or ''}:{self.held}:{self.at}",
            business=self.business,
            phone=self.phone,
            fields={"target": target, "held": self.held, "author": self.author, "reason": self.reason},
        )


# What Twilio's Recordings list said about a call that had no completed recording: "none" (no
# recording at all), or the status of the one it has ("absent", "failed", "processing", ...).
@dataclass(frozen=True)
class RecordingCheck:
    """`ivr recordings sync` asked Twilio's Recordings list for a call and found no completed
    recording. Chained once per call and outcome (a repeat with the same answer adds nothing)."""

    call_sid: str
    outcome: str
    recording_sid: str | None
    error_code: str | None

    def to_event(self) -> NewEvent:
        key = [self.call_sid, self.outcome, self.recording_sid or "", self.error_code or ""]
        return _call_event(self, "recording_check", ":".join(["recording_check", *key]))
