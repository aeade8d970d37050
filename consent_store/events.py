"""The records the consent store keeps: what callers decided and the evidence around it.

These are plain frozen dataclasses; they never talk to a database. Decisions, prompts, call
statuses and exports are here; every event's base in consent_store/event_base.py, the
recording evidence in consent_store/recording_events.py and the registry's records in
consent_store/records.py, all importable from here as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# Re-exported (X as X): these records moved to modules of their own; imports from here still work.
from consent_store.event_base import EventKind as EventKind
from consent_store.event_base import NewEvent as NewEvent
from consent_store.event_base import StoredEvent as StoredEvent
from consent_store.event_base import given
from consent_store.recording_events import ArchivedRecording as ArchivedRecording
from consent_store.recording_events import DeletedReason as DeletedReason
from consent_store.recording_events import DeletedWhere as DeletedWhere
from consent_store.recording_events import FoundBy as FoundBy
from consent_store.recording_events import LegalHold as LegalHold
from consent_store.recording_events import RecordingArchived as RecordingArchived
from consent_store.recording_events import RecordingCheck as RecordingCheck
from consent_store.recording_events import RecordingDeleted as RecordingDeleted
from consent_store.recording_events import RecordingStatus as RecordingStatus
from consent_store.recording_events import RecordingToFetch as RecordingToFetch
from consent_store.records import ROLES as ROLES
from consent_store.records import ApiToken as ApiToken
from consent_store.records import Business as Business
from consent_store.records import Erasure as Erasure
from consent_store.records import OptOutNotice as OptOutNotice
from consent_store.records import OptOutWebhook as OptOutWebhook
from consent_store.records import Role as Role
from consent_store.records import ScriptDraft as ScriptDraft
from consent_store.records import ScriptVersion as ScriptVersion
from consent_store.records import User as User
from consent_store.records import WebSession as WebSession

Action = Literal["opt_in", "declined", "opt_out"]
ACTIONS: tuple[Action, ...] = ("opt_in", "declined", "opt_out")

# Where a decision was made: absent from a decision's data for a phone call (old and new);
# "whatsapp" or "sms" for a keyword received by message (POST /twilio/messaging); for an
# opt-out another system reports (POST /api/opt-outs), the channel it names.
Channel = Literal["whatsapp", "sms", "voice", "email", "web", "other"]
CHANNELS: tuple[Channel, ...] = ("whatsapp", "sms", "voice", "email", "web", "other")


# A decision body's optional fields: each goes into the body only when known (`given`).
_OPTIONAL_BODY_FIELDS = tuple(
    "prompts_heard seconds_to_decision stir_verstat called_number account_sid from_country"
    " caller_name simulated channel message_sid message_text source token_name evidence".split()
)


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
        # Only when known: a decision without them keeps the body (and hash) it always had.
        optional = {name: getattr(self, name) for name in _OPTIONAL_BODY_FIELDS}
        optional["simulated"] = True if self.simulated else None  # flagged only when true
        fields.update(given(**optional))
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
    # Only records up to this one (else the read snapshot's head): reading again through the
    # same record gives the same rows however the log has grown since (downloads, verify).
    through_seq: int | None = None


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
