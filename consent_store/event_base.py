"""What every chained event is: its kind, the event to append (`NewEvent`) and the event as stored.

Plain frozen dataclasses; they never talk to a database. consent_store/events.py re-exports them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

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


def given(**values: Any) -> dict[str, Any]:
    """The values that are set (not None), for the optional fields of an event's body: a field
    goes into the body only when known, so a record without it keeps the body (and the hash)
    records had before the field existed."""
    return {key: value for key, value in values.items() if value is not None}
