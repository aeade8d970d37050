"""The records the consent store keeps: what callers decided and the evidence around it.

These are plain frozen dataclasses; they never talk to a database.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

Action = Literal["opt_in", "declined", "opt_out"]
ACTIONS: tuple[Action, ...] = ("opt_in", "declined", "opt_out")

# Where a decision was made: absent from a decision's data for a phone call (old and new);
# "whatsapp" or "sms" for a keyword received by message (POST /twilio/messaging); for an
# opt-out another system reports (POST /api/opt-outs), the channel it names.
Channel = Literal["whatsapp", "sms", "voice", "email", "web", "other"]
CHANNELS: tuple[Channel, ...] = ("whatsapp", "sms", "voice", "email", "web", "other")

EventKind = Literal[
    "decision",
    "prompt",
    "recording",
    "call_status",
    "business",
    "script",
    "user",
    "erasure",
    "token",
    "recording_archived",
    "recording_deleted",
    "legal_hold",
    "recording_check",
]
# admin: manages users and businesses, and may do what a manager does; manager: edits what
# callers hear; auditor: reads the evidence.
Role = Literal["admin", "manager", "auditor"]
ROLES: tuple[Role, ...] = ("admin", "manager", "auditor")


@dataclass(frozen=True)
class NewEvent:
    """An event waiting to be appended.

    `idempotency_key` makes appends safe to repeat: a second event with the
    same key is not written; the first one is returned instead.
    `phone` is personal data kept outside the hash chain (the chain holds a
    salted commitment to it), so it can be erased without breaking the chain.
    `spoken_text` is stored content-addressed by its SHA-256.
    """

    kind: EventKind
    idempotency_key: str
    fields: Mapping[str, Any]
    call_sid: str | None = None
    business: str | None = None
    action: str | None = None
    phone: str | None = None
    spoken_text: str | None = None


@dataclass(frozen=True)
class StoredEvent:
    """An event as it stands in the chain."""

    seq: int
    recorded_at: str
    kind: str
    body: str
    prev_hash: str
    hash: str
    duplicate: bool = False

    @cached_property
    def data(self) -> Mapping[str, Any]:
        """The event's own fields, read back from the hashed body."""
        data: Mapping[str, Any] = json.loads(self.body)["data"]
        return data


@dataclass(frozen=True)
class ConsentDecision:
    """What a caller chose, with everything needed to prove it later."""

    call_sid: str
    phone: str
    business: str
    action: Action
    message_types: tuple[str, ...]
    digits: str
    locale: str
    script_version: int
    script_sha256: str
    spoken_text: str
    # How the caller got there: prompts played before the key press (language menus and
    # repeats included) and seconds since the call was answered. None: not known.
    prompts_heard: int | None = None
    seconds_to_decision: float | None = None
    # Who the network says called, from Twilio's webhook, verbatim (see README, "Export formats"):
    # the STIR/SHAKEN attestation (StirVerstat), the number dialled (To), the AccountSid,
    # FromCountry and CallerName. None: Twilio did not send it (old records hold none).
    stir_verstat: str | None = None
    called_number: str | None = None
    account_sid: str | None = None
    from_country: str | None = None
    caller_name: str | None = None
    # Placed by this service's own emulator (`ivr call --record`), not by a caller on Twilio:
    # kept as evidence of what was done, left out of the quality figures.
    simulated: bool = False
    # A decision not made on a call (see Channel): its channel, and what proves it. A keyword by
    # message: the MessageSid (also the decision's call_sid) and the text received, verbatim.
    # An opt-out from another system (`source` "api"): the token's name, what it sent as
    # `evidence`, and `idempotency`, the key its records are kept once by (call_sid empty).
    channel: Channel | None = None
    message_sid: str | None = None
    message_text: str | None = None
    source: str | None = None
    token_name: str | None = None
    evidence: object = None
    idempotency: str | None = None

    def to_event(self) -> NewEvent:
        fields: dict[str, Any] = {
            "action": self.action,
            "message_types": list(self.message_types),
            "digits": self.digits,
            "locale": self.locale,
            "script_version": self.script_version,
            "script_sha256": self.script_sha256,
        }
        if self.prompts_heard is not None:
            fields["prompts_heard"] = self.prompts_heard
        if self.seconds_to_decision is not None:
            fields["seconds_to_decision"] = self.seconds_to_decision
        # Only when known: a decision without them keeps the body (and hash) it always had.
        identity = {
            "stir_verstat": self.stir_verstat,
            "called_number": self.called_number,
            "account_sid": self.account_sid,
            "from_country": self.from_country,
            "caller_name": self.caller_name,
        }
        fields.update((key, value) for key, value in identity.items() if value is not None)
        if self.simulated:
            fields["simulated"] = True
        received = {
            "channel": self.channel,
            "message_sid": self.message_sid,
            "message_text": self.message_text,
            "source": self.source,
            "token_name": self.token_name,
            "evidence": self.evidence,
        }
        fields.update((key, value) for key, value in received.items() if value is not None)
        return NewEvent(
            kind="decision",
            idempotency_key=f"decision:{self.idempotency or self.call_sid}",
            call_sid=self.call_sid or None,
            business=self.business,
            action=self.action,
            phone=self.phone,
            spoken_text=self.spoken_text,
            fields=fields,
        )


PromptName = Literal["language_menu", "consent", "subscribed", "goodbye"]
PromptReason = Literal["language_chosen", "no_input", "invalid", "repeat", "reworded"]


@dataclass(frozen=True)
class PromptPlayed:
    """A prompt played to a caller in answer to a key press or a silence.

    The first prompt of every answered call is implied by the call itself, so it is not
    recorded; these records say what came after it: the language chosen, re-prompts,
    repeats, and the goodbye after the last attempt (`prompt="goodbye"`). Not evidence of
    consent, but of how the caller got to a decision (or why there was none).
    """

    call_sid: str
    business: str
    prompt: PromptName
    reason: PromptReason
    prompts_heard: int  # prompts played so far in this call, this one included (a goodbye adds none)
    locale: str | None
    script_version: int | None

    def to_event(self) -> NewEvent:
        return NewEvent(
            kind="prompt",
            idempotency_key=f"prompt:{self.call_sid}:{self.prompts_heard}:{self.prompt}",
            call_sid=self.call_sid,
            business=self.business,
            fields={
                "prompt": self.prompt,
                "reason": self.reason,
                "prompts_heard": self.prompts_heard,
                "locale": self.locale,
                "script_version": self.script_version,
            },
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
        }
        if self.found_by is not None:
            fields["found_by"] = self.found_by
        if self.error_code is not None:
            fields["error_code"] = self.error_code
        return NewEvent(
            kind="recording",
            idempotency_key=f"recording:{self.call_sid}:{self.recording_sid}:{self.status}",
            call_sid=self.call_sid,
            fields=fields,
        )


# How an archived recording was found: its status callback, or `ivr recordings sync` asking Twilio.
FoundBy = Literal["callback", "reconciliation"]


@dataclass(frozen=True)
class RecordingArchived:
    """A call's recording fetched from Twilio and kept in the recording archive, by SHA-256.

    Appended only once the bytes are durable in the archive; `location` is the archive's URL
    and this file's place in it. `url` is the RecordingUrl Twilio gave (None if not known).
    """

    call_sid: str
    recording_sid: str
    sha256: str
    bytes: int
    media_type: str
    duration: int | None
    location: str
    found_by: FoundBy
    url: str | None = None

    def to_event(self) -> NewEvent:
        return NewEvent(
            kind="recording_archived",
            idempotency_key=f"recording_archived:{self.recording_sid}",
            call_sid=self.call_sid,
            fields={
                "recording_sid": self.recording_sid,
                "sha256": self.sha256,
                "bytes": self.bytes,
                "media_type": self.media_type,
                "duration": self.duration,
                "location": self.location,
                "found_by": self.found_by,
                "url": self.url,
            },
        )


@dataclass(frozen=True)
class RecordingToFetch:
    """A completed recording with no `recording_archived` event yet (derived from the log)."""

    seq: int
    call_sid: str
    recording_sid: str
    url: str | None
    duration: int | None


@dataclass(frozen=True)
class ArchivedRecording:
    """A call's archived recording, as its `recording_archived` event says."""

    seq: int
    recorded_at: str
    call_sid: str
    recording_sid: str
    sha256: str
    bytes: int
    media_type: str
    duration: int | None
    location: str
    found_by: str


@dataclass(frozen=True)
class CallStatus:
    """A call status callback: how the call ended."""

    call_sid: str
    status: str
    duration: int | None
    business: str | None

    def to_event(self) -> NewEvent:
        return NewEvent(
            kind="call_status",
            idempotency_key=f"call_status:{self.call_sid}:{self.status}",
            call_sid=self.call_sid,
            business=self.business,
            fields={"status": self.status, "duration": self.duration},
        )


@dataclass(frozen=True)
class Business:
    name: str
    numbers: tuple[str, ...]
    message_types: tuple[str, ...]
    locales: tuple[str, ...]
    demo: bool = False
    # WhatsApp senders of the business that are not among its numbers (E.164, without the
    # "whatsapp:" of Twilio's addresses): where its incoming messages arrive.
    whatsapp_numbers: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScriptVersion:
    business: str
    locale: str
    version: int
    status: Literal["draft", "published", "superseded"]
    text: str
    sha256: str
    created_at: str
    author: str


@dataclass(frozen=True)
class ScriptDraft:
    business: str
    locale: str
    text: str
    sha256: str
    updated_at: str
    author: str


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    password_hash: str
    disabled: bool = False
    # The businesses this user may see and change; None: every business.
    businesses: tuple[str, ...] | None = None
    last_sign_in: str | None = None


@dataclass(frozen=True)
class WebSession:
    """A signed-in browser, kept server-side so that ending it ends every copy of its cookie."""

    user: str
    created_at: int  # seconds since the epoch
    last_seen: int
    ended_at: int | None


@dataclass(frozen=True)
class ApiToken:
    name: str
    businesses: tuple[str, ...] | None = None  # None: every business


@dataclass(frozen=True)
class Standing:
    """The latest opt-in or opt-out of a phone for a business."""

    action: Action
    recorded_at: str
    seq: int
    record_hash: str
    message_types: tuple[str, ...]


@dataclass(frozen=True)
class ExportFilter:
    business: str | None = None
    # Only these businesses (a signed-in user's or a token's); None: no such limit.
    businesses: tuple[str, ...] | None = None
    action: Action | None = None
    since: str | None = None
    until: str | None = None
    call_sid: str | None = None
    phone: str | None = None
    include_demo: bool = False
    # Decisions of simulated calls (`"simulated": true` in their data): None both, False none, True only.
    simulated: bool | None = None
    # Only decisions whose caller ID is not attested A (StirVerstat absent or another value).
    unattested: bool = False
    # Only decisions after this record (keyset paging: the last seq of the page before).
    after_seq: int | None = None


@dataclass(frozen=True)
class DecisionRow:
    """One decision with its recording, as exported: seq, then consent_store.columns.COLUMNS
    in their order (checked when that module is imported)."""

    seq: int
    recorded_at: str
    phone: str | None
    business: str
    action: str
    message_types: tuple[str, ...]
    call_sid: str
    digits: str
    locale: str
    script_version: int
    script_sha256: str
    recording_sid: str | None
    recording_url: str | None
    recording_duration: int | None
    record_hash: str
    stir_verstat: str | None = None
    called_number: str | None = None
    account_sid: str | None = None
    from_country: str | None = None
    caller_name: str | None = None
    simulated: int | None = None
    channel: str | None = None
    recording_sha256: str | None = None


@dataclass(frozen=True)
class VerifyResult:
    count: int
    head: str
    first_bad_seq: int | None = None
    problem: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def intact(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class Erasure:
    """What `forget` removed: the phone is gone from reads; these recordings still exist at Twilio."""

    subject: str
    decisions: int
    recording_sids: tuple[str, ...]
    record_hash: str


@dataclass(frozen=True)
class OptOutWebhook:
    """A business's opt-out webhook: every opt-out after `cursor_seq` is still to be sent."""

    business: str
    url: str
    secret: str
    cursor_seq: int
    failures: int
    last_error: str | None


@dataclass(frozen=True)
class OptOutNotice:
    seq: int
    recorded_at: str
    call_sid: str
    phone: str | None
    record_hash: str


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
        return NewEvent(
            kind="recording_deleted",
            idempotency_key=f"recording_deleted:{self.recording_sid}:{self.where}",
            call_sid=self.call_sid,
            fields={
                "recording_sid": self.recording_sid,
                "sha256": self.sha256,
                "where": self.where,
                "reason": self.reason,
                "author": self.author,
            },
        )


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
        return NewEvent(
            kind="recording_check",
            idempotency_key=":".join(
                ["recording_check", self.call_sid, self.outcome]
                + [self.recording_sid or "", self.error_code or ""]
            ),
            call_sid=self.call_sid,
            fields={
                "outcome": self.outcome,
                "recording_sid": self.recording_sid,
                "error_code": self.error_code,
            },
        )
