"""Legal holds and recording retention periods, and the reads that purge, erasure and
reconciliation need about recordings: all derived from the hash chain, nothing stored beside it.

A retention period is a chained `business` event (`change: recording_retention`); a hold is a
chained `legal_hold` event on a phone (kept outside the chain as a salted subject, as a
decision's phone is) or a business; the latest event for each decides. Works on either backend
through the store's read and append primitives (`StoreBackend`). Appends only; never updates or
deletes an event.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from consent_store.backend import StoreBackend
from consent_store.events import LegalHold, NewEvent, RecordingCheck, RecordingDeleted, StoredEvent
from consent_store.exceptions import HoldNotPlaced, UnknownBusiness
from consent_store.writing import utc_now


@dataclass(frozen=True)
class Holds:
    """The holds in place: subjects (phones, by their salted subject) and businesses."""

    subjects: frozenset[str]
    businesses: frozenset[str]

    def covers(self, subject: str | None, business: str | None) -> bool:
        return (subject is not None and subject in self.subjects) or (
            business is not None and business in self.businesses
        )


@dataclass(frozen=True)
class HoldRecord:
    """A hold in place, as listed: the phone when it can still be read (None once erased)."""

    seq: int
    recorded_at: str
    target: str  # "phone" | "business"
    phone: str | None
    business: str | None
    author: str
    reason: str


@dataclass(frozen=True)
class ArchivedAudio:
    """A recording kept in the archive (its `recording_archived` event), with its call's
    decision and what has been deleted of it since."""

    seq: int
    archived_at: str
    call_sid: str
    recording_sid: str
    sha256: str
    bytes: int
    media_type: str
    location: str
    found_by: str
    business: str | None
    subject: str | None
    decided_at: str | None
    deleted_from_archive: bool
    deleted_at_twilio: bool


def _body(row_body: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(row_body)["data"]
    return data


async def subject_of(store: StoreBackend, phone: str) -> str | None:
    row = await store._fetchone("SELECT subject FROM subjects WHERE phone = ?", (phone,))
    return None if row is None else str(row[0])


# -- retention ---------------------------------------------------------------------------


async def set_recording_retention(
    store: StoreBackend, business: str, years: int | None, author: str
) -> StoredEvent:
    """Keep a business's recordings `years` years after the decision (None: for ever). Chained."""
    if not await store._fetchone("SELECT 1 FROM businesses WHERE name = ?", (business,)):
        raise UnknownBusiness(business)
    event = NewEvent(
        kind="business",
        idempotency_key=f"business:{business}:recording_retention:{utc_now()}",
        business=business,
        fields={"change": "recording_retention", "years": years, "author": author},
    )
    return await store._append(event)


async def recording_retention(store: StoreBackend) -> dict[str, int]:
    """Each business's retention period in years (businesses without one are left out)."""
    rows = await store._fetchall(
        "SELECT business, body FROM events WHERE kind = 'business' AND call_sid IS NULL ORDER BY seq"
    )
    years: dict[str, int | None] = {}
    for business, body in rows:
        data = _body(body)
        if data.get("change") == "recording_retention":
            years[business] = data.get("years")
    return {b: y for b, y in years.items() if y is not None}


# -- legal holds -------------------------------------------------------------------------


async def legal_holds(store: StoreBackend) -> Holds:
    """The holds in place now: the latest hold event of each phone or business decides."""
    rows = await store._fetchall(
        "SELECT subject, business, body FROM events WHERE kind = 'legal_hold' ORDER BY seq"
    )
    subjects: dict[str, bool] = {}
    businesses: dict[str, bool] = {}
    for subject, business, body in rows:
        data = _body(body)
        if data.get("target") == "phone" and subject is not None:
            subjects[subject] = bool(data.get("held"))
        elif data.get("target") == "business" and business is not None:
            businesses[business] = bool(data.get("held"))
    return Holds(
        frozenset(s for s, held in subjects.items() if held),
        frozenset(b for b, held in businesses.items() if held),
    )


async def hold_records(store: StoreBackend) -> list[HoldRecord]:
    """The holds in place, oldest first, with the phone when the store can still show it."""
    rows = await store._fetchall(
        "SELECT e.seq, e.recorded_at, e.subject, e.business, e.body, s.phone FROM events e"
        " LEFT JOIN subjects s ON s.subject = e.subject WHERE e.kind = 'legal_hold' ORDER BY e.seq"
    )
    latest: dict[tuple[str, str], HoldRecord | None] = {}
    for seq, at, subject, business, body, phone in rows:
        data = _body(body)
        target = str(data.get("target"))
        key = (target, subject if target == "phone" else business)
        latest[key] = (
            HoldRecord(seq, at, target, phone, business, str(data.get("author")), str(data.get("reason")))
            if data.get("held")
            else None
        )
    return sorted((r for r in latest.values() if r is not None), key=lambda r: r.seq)


async def change_legal_hold(
    store: StoreBackend,
    *,
    held: bool,
    author: str,
    reason: str,
    phone: str | None = None,
    business: str | None = None,
) -> StoredEvent | None:
    """Place (held) or release a hold on a phone or a business, chained. None: it already was so
    (placing a hold in place again records nothing); HoldNotPlaced when releasing one not in place."""
    if (phone is None) == (business is None):
        raise ValueError("a legal hold is on a phone or on a business: name one")
    holds = await legal_holds(store)
    if business is not None:
        if not await store._fetchone("SELECT 1 FROM businesses WHERE name = ?", (business,)):
            raise UnknownBusiness(business)
        now_held = business in holds.businesses
        target = f"business {business!r}"
    else:
        assert phone is not None
        subject = await subject_of(store, phone)
        now_held = subject is not None and subject in holds.subjects
        target = phone
    if now_held == held:
        if not held:
            raise HoldNotPlaced(target)
        return None
    hold = LegalHold(held=held, author=author, reason=reason, at=utc_now(), phone=phone, business=business)
    return await store._append(hold.to_event())


# -- recordings in the archive -----------------------------------------------------------


async def archived_audio(store: StoreBackend, call_sids: Sequence[str] | None = None) -> list[ArchivedAudio]:
    """Every archived recording (or those of `call_sids`), oldest first, with its decision's
    business, subject and time and whether it was deleted since (from the archive, at Twilio)."""
    where = ""
    params: list[Any] = []
    if call_sids is not None:
        if not call_sids:
            return []
        where = f" AND a.call_sid IN ({', '.join('?' for _ in call_sids)})"
        params = list(call_sids)
    rows = await store._fetchall(
        "SELECT a.seq, a.recorded_at, a.call_sid, a.body, d.business, d.subject, d.recorded_at"
        " FROM events a LEFT JOIN events d ON d.call_sid = a.call_sid AND d.kind = 'decision'"
        f" WHERE a.kind = 'recording_archived'{where} ORDER BY a.seq",
        params,
    )
    deleted = await _deletions(store, call_sids)
    found: list[ArchivedAudio] = []
    for seq, at, call_sid, body, business, subject, decided_at in rows:
        data = _body(body)
        sid = str(data["recording_sid"])
        found.append(
            ArchivedAudio(
                seq=seq,
                archived_at=at,
                call_sid=call_sid,
                recording_sid=sid,
                sha256=str(data["sha256"]),
                bytes=int(data.get("bytes") or 0),
                media_type=str(data.get("media_type") or "application/octet-stream"),
                location=str(data.get("location") or ""),
                found_by=str(data.get("found_by") or "callback"),
                business=business,
                subject=subject,
                decided_at=decided_at,
                deleted_from_archive=(sid, "archive") in deleted,
                deleted_at_twilio=(sid, "twilio") in deleted,
            )
        )
    return found


async def _deletions(store: StoreBackend, call_sids: Sequence[str] | None) -> set[tuple[str, str]]:
    where, params = "", []
    if call_sids is not None:
        where = f" AND call_sid IN ({', '.join('?' for _ in call_sids)})"
        params = list(call_sids)
    rows = await store._fetchall(f"SELECT body FROM events WHERE kind = 'recording_deleted'{where}", params)
    pairs = set()
    for (body,) in rows:
        data = _body(body)
        pairs.add((str(data["recording_sid"]), str(data["where"])))
    return pairs


async def deleted_sha256s(store: StoreBackend) -> frozenset[str]:
    """SHA-256s of recordings deleted from the archive on purpose (purge, erasure): `ivr verify`
    does not call these missing."""
    rows = await store._fetchall("SELECT body FROM events WHERE kind = 'recording_deleted'")
    found = set()
    for (body,) in rows:
        data = _body(body)
        if data.get("where") == "archive" and data.get("sha256"):
            found.add(str(data["sha256"]))
    return frozenset(found)


async def calls_of_subject(store: StoreBackend, subject: str) -> list[str]:
    rows = await store._fetchall(
        "SELECT DISTINCT call_sid FROM events WHERE subject = ? AND call_sid IS NOT NULL", (subject,)
    )
    return sorted(str(r[0]) for r in rows)


async def record_recording_check(store: StoreBackend, check: RecordingCheck) -> StoredEvent:
    """Chain what Twilio's Recordings list said about a call (a repeat of the same answer is not)."""
    return await store._append(check.to_event())


async def record_recording_deleted(store: StoreBackend, deleted: RecordingDeleted) -> StoredEvent:
    """Chain a recording's deletion (from the archive or at Twilio); a repeat returns the first."""
    return await store._append(deleted.to_event())


async def businesses_of_subject(store: StoreBackend, subject: str) -> set[str]:
    rows = await store._fetchall(
        "SELECT DISTINCT business FROM events WHERE subject = ? AND business IS NOT NULL", (subject,)
    )
    return {str(r[0]) for r in rows}


async def recordings_of_calls(store: StoreBackend, call_sids: Sequence[str]) -> list[tuple[str, str]]:
    """(CallSid, RecordingSid) of every recording reported for these calls (callbacks, reconciled)."""
    if not call_sids:
        return []
    rows = await store._fetchall(
        f"SELECT call_sid, body FROM events WHERE kind = 'recording'"
        f" AND call_sid IN ({', '.join('?' for _ in call_sids)}) ORDER BY seq",
        list(call_sids),
    )
    found: dict[str, str] = {}
    for call_sid, body in rows:
        sid = _body(body).get("recording_sid")
        if sid:
            found[str(sid)] = str(call_sid)
    return sorted((call, sid) for sid, call in found.items())
