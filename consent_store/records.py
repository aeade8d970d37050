"""The registry's records: businesses, scripts and drafts, users, sessions, tokens, erasures, webhooks.

Plain frozen dataclasses; they never talk to a database. consent_store/events.py re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# admin: manages users and businesses, and may do what a manager does; manager: edits what
# callers hear; auditor: reads the evidence.
Role = Literal["admin", "manager", "auditor"]
ROLES: tuple[Role, ...] = ("admin", "manager", "auditor")


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
class Erasure:
    """What `forget` removed: the phone is gone from reads; these recordings still exist at Twilio."""

    subject: str
    decisions: int
    recording_sids: tuple[str, ...]
    record_hash: str
    message_statuses: int = 0  # set when only messages were sent to the number (no subject)


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
    # How the opt-out came: "voice" (a call), "whatsapp" or "sms" (a keyword), or the channel
    # another system named (POST /api/opt-outs).
    channel: str = "voice"
