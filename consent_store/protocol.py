"""`ConsentStore`: the one interface code above the store uses, whichever backend holds the data.

Both `SQLiteStore` and `PostgresStore` satisfy it structurally (mypy checks this through
`consent_store.open_store`, which returns either as a `ConsentStore`, and
tests/test_store_protocol.py). Its public methods are listed alphabetically; the
underscore members come from `StoreBackend` (consent_store/backend.py) and are only for
the store's own module-level functions (message statuses, recording holds and gaps),
which take a `ConsentStore` from `ivr` and read or write through them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from typing import Protocol, Self

from consent_store.audit_reads import ChainProof, IncompleteEvidence
from consent_store.backend import StoreBackend
from consent_store.chain import ChainRow
from consent_store.columns import CsvChunk
from consent_store.decisions import OnSnapshot
from consent_store.events import (
    ApiToken,
    ArchivedRecording,
    Business,
    CallStatus,
    ConsentDecision,
    DecisionRow,
    Erasure,
    ExportFilter,
    OptOutNotice,
    OptOutWebhook,
    PromptPlayed,
    RecordingArchived,
    RecordingStatus,
    RecordingToFetch,
    Role,
    ScriptDraft,
    ScriptVersion,
    Standing,
    StoredEvent,
    User,
    VerifyResult,
    WebSession,
)
from consent_store.stats import EVER, Period, QualityFigures


class ConsentStore(StoreBackend, Protocol):
    """The consent store: open it (or `async with` it), then read and append through it."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def add_api_token(
        self, name: str, token_sha256: str, author: str, businesses: Sequence[str] | None = None
    ) -> None:
        """Keep a sender's token as its SHA-256 only; chained so every grant is on record."""
        ...

    async def add_business(self, business: Business, scripts: dict[str, str], author: str) -> StoredEvent:
        """Create a business, its numbers and a published version 1 script per locale."""
        ...

    async def add_locale(self, business: str, locale: str, text: str, author: str) -> None:
        """Add a locale with `text` published as its version 1 (the caller lints it first)."""
        ...

    async def add_number(self, business: str, number: str, author: str) -> None:
        """Route calls to `number` to this business from now on; NumberTaken if any business has it."""
        ...

    async def add_user(
        self, name: str, role: Role, password_hash: str, author: str, businesses: Sequence[str] | None = None
    ) -> User:
        """Create a user; `businesses` None: every business. Chained (never the password hash)."""
        ...

    async def api_token(self, token_sha256: str) -> ApiToken | None:
        """The live token with this hash (its name and businesses), if any."""
        ...

    async def api_token_name(self, token_sha256: str) -> str | None:
        """The name of the live token with this hash, if any."""
        ...

    async def archived_count(self) -> int:
        """How many recordings were archived (`recording_archived` events)."""
        ...

    async def archived_recording(self, call_sid: str) -> ArchivedRecording | None:
        """The call's archived recording (the latest, if Twilio made several), or None."""
        ...

    async def archived_recordings(
        self, after_seq: int = 0, limit: int = 1000, call_sid: str | None = None
    ) -> list[ArchivedRecording]:
        """`recording_archived` events after record `after_seq` (of one call if given), oldest first."""
        ...

    async def attach_recording(self, recording: RecordingStatus) -> StoredEvent:
        """Append a recording status; exports join it to the call's decision."""
        ...

    async def business_for_number(self, number: str) -> Business | None: ...

    async def chain_proof(self, seq: int) -> ChainProof | None: ...

    def chain_rows(self) -> AsyncIterator[list[ChainRow]]:
        """All events in sequence order, in batches, from a connection of their own."""
        ...

    async def close(self) -> None: ...

    async def count_decisions(self, where: ExportFilter) -> int: ...

    async def deleted_recordings(self) -> dict[str, str]:
        """RecordingSid -> why, for every recording whose archived audio was deleted on purpose"""
        ...

    async def discard_draft(self, business: str, locale: str) -> None: ...

    async def end_session(self, id_sha256: str, now: int) -> None: ...

    async def end_user_sessions(self, name: str, author: str) -> None:
        """End every session of a user at once (a lost laptop, a copied cookie)."""
        ...

    async def event_count(self) -> int: ...

    async def events_for_call(self, call_sid: str) -> list[ChainRow]:
        """Every event of one call (decision, recordings, call status), in chain order."""
        ...

    def export_csv_chunks(
        self,
        where: ExportFilter,
        on_snapshot: OnSnapshot | None = None,
    ) -> AsyncGenerator[CsvChunk, None]:
        """The CSV rows (no header) of `export_decisions`, built mostly by SQLite on two"""
        ...

    def export_decisions(
        self,
        where: ExportFilter,
        on_snapshot: OnSnapshot | None = None,
    ) -> AsyncGenerator[DecisionRow, None]:
        """Every decision matching the filter, oldest first, from one read snapshot (up to
        record `where.through_seq` if given); `on_snapshot(seq, hash)` learns which record that is."""
        ...

    async def forget_phone(self, phone: str, author: str, reason: str) -> Erasure | None:
        """Erase a caller's phone number (and its salt) so no read or export can show it again."""
        ...

    async def get_business(self, name: str) -> Business: ...

    async def get_setting(self, key: str) -> str | None: ...

    async def get_user(self, name: str) -> User | None: ...

    async def incomplete_evidence(
        self, grace_minutes: int = 15, limit: int = 500
    ) -> list[IncompleteEvidence]:
        """Decisions with no completed recording: reported absent or failed, or none after the grace time."""
        ...

    async def list_businesses(self) -> list[Business]: ...

    async def list_users(self) -> list[User]: ...

    async def open(self) -> None: ...

    async def opt_in_quality(
        self, business: str, locales: Sequence[str], period: Period = EVER, now: dt.datetime | None = None
    ) -> QualityFigures:
        """Calls, outcomes, prompts heard, times and later opt-outs per script version and locale."""
        ...

    async def opt_out_webhook_result(
        self, business: str, delivered_seq: int | None, error: str | None
    ) -> None:
        """Record a delivery: advance past `delivered_seq`, or count a failure."""
        ...

    async def opt_out_webhooks(self) -> list[OptOutWebhook]: ...

    async def opt_outs_after(self, business: str, after_seq: int, limit: int = 50) -> list[OptOutNotice]:
        """Opt-outs of a business recorded after record `after_seq`, oldest first."""
        ...

    async def opted_in_before(self, business: str, seq: int) -> int:
        """Subjects currently opted in to the business whose opt-in is older than record `seq`."""
        ...

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers and takes a durable write now."""
        ...

    async def publish_script(
        self, business: str, locale: str, text: str, author: str, note: str = "published"
    ) -> ScriptVersion:
        """Make `text` the version callers hear, as the next version number; chain the change."""
        ...

    async def purge_sessions(self, before: int) -> None:
        """Forget sessions that ended, or were last seen, before `before` (they can never be used again)."""
        ...

    async def reanchor_head_file(self) -> VerifyResult:
        """After a deliberate restore: verify against the checkpoints alone and, if intact,"""
        ...

    async def record_archived(self, archived: RecordingArchived) -> StoredEvent:
        """Chain a recording kept in the archive; a repeat for the same RecordingSid returns the first."""
        ...

    async def record_call_status(self, status: CallStatus) -> StoredEvent:
        """Append how a call ended (Twilio's status callback)."""
        ...

    async def record_decision(self, decision: ConsentDecision) -> StoredEvent:
        """Append a caller's decision; a repeat for the same call returns the first."""
        ...

    async def record_prompt(self, prompt: PromptPlayed) -> StoredEvent:
        """Append a prompt played after a key press or a silence; a repeat returns the first."""
        ...

    async def recordings_to_fetch(self, after_seq: int = 0, limit: int = 500) -> list[RecordingToFetch]:
        """Completed recordings after record `after_seq` not yet archived, oldest first."""
        ...

    async def registry_changed_at(self) -> int:
        """The record number of the latest business or script change (0: none yet)."""
        ...

    async def remove_number(self, business: str, number: str, author: str) -> None:
        """Stop routing `number` to this business; a business keeps at least one number for calls."""
        ...

    async def revoke_api_token(self, name: str, author: str) -> bool:
        """Revoke a token; False if there is no live token by that name."""
        ...

    async def save_draft(self, business: str, locale: str, text: str, author: str) -> ScriptDraft:
        """Keep a manager's unpublished edit (one draft per business and locale)."""
        ...

    async def script_draft(self, business: str, locale: str) -> ScriptDraft | None: ...

    async def script_published_at(self, business: str, locale: str, version: int) -> tuple[int, str] | None:
        """The chain record (seq, time) that published a script version."""
        ...

    async def script_version(self, business: str, locale: str, version: int | None = None) -> ScriptVersion:
        """The given version, or the published one when version is None."""
        ...

    async def script_versions(self, business: str, locale: str) -> list[ScriptVersion]:
        """Every version of a script, newest first."""
        ...

    async def set_message_types(self, business: str, message_types: Sequence[str], author: str) -> None:
        """Change what a business's callers are asked to agree to; chained, since it changes the wording."""
        ...

    async def set_opt_out_webhook(self, business: str, url: str | None, secret: str, author: str) -> None:
        """Send the business every opt-out from now on (url None: stop). Chained, without the secret."""
        ...

    async def set_password(self, name: str, password_hash: str, author: str = "cli") -> None:
        """A new password; every session of the user ends."""
        ...

    async def set_user_disabled(self, name: str, disabled: bool, author: str) -> None:
        """Disable (every session ends) or enable a user."""
        ...

    async def setting_or_default(self, key: str, default: str) -> str:
        """Return the stored value, storing `default` first if there is none."""
        ...

    async def spoken_text(self, sha256: str) -> str | None:
        """The exact text a caller heard, by its SHA-256 (the decision's script_sha256)."""
        ...

    async def standing(self, phone: str, business: str) -> Standing | None:
        """The latest opt-in/opt-out of this phone for this business, from an index."""
        ...

    async def start_session(self, id_sha256: str, user: str, now: int) -> None: ...

    async def touch_session(self, id_sha256: str, now: int) -> None: ...

    async def verify(self, progress: Callable[[int], None] | None = None) -> VerifyResult:
        """Re-compute the whole hash chain, streaming, through every checkpoint."""
        ...

    async def web_session(self, id_sha256: str) -> WebSession | None: ...
