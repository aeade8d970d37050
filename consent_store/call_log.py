"""Appending what happens on a call: decisions, prompts played, recordings, call statuses.

Shared by both backends, which provide `_append` (one writer, idempotent by key).
Appends only; never updates or deletes an event.
"""

from __future__ import annotations

from consent_store.events import (
    CallStatus,
    ConsentDecision,
    PromptPlayed,
    RecordingStatus,
    StoredEvent,
)
from consent_store.recording_archive import RecordingArchiveMixin


class CallLogMixin(RecordingArchiveMixin):
    """The call-facing appends of a store (and, through RecordingArchiveMixin, the archive's)."""

    async def record_decision(self, decision: ConsentDecision) -> StoredEvent:
        """Append a caller's decision; a repeat for the same call returns the first."""
        return await self._append(decision.to_event())

    async def record_prompt(self, prompt: PromptPlayed) -> StoredEvent:
        """Append a prompt played after a key press or a silence; a repeat returns the first."""
        return await self._append(prompt.to_event())

    async def attach_recording(self, recording: RecordingStatus) -> StoredEvent:
        """Append a recording status; exports join it to the call's decision."""
        return await self._append(recording.to_event())

    async def record_call_status(self, status: CallStatus) -> StoredEvent:
        """Append how a call ended (Twilio's status callback)."""
        return await self._append(status.to_event())
