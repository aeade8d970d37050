"""Deleting recordings on purpose: retention (`ivr recordings purge`), erasure (`ivr forget`) and
deletion at Twilio once archived (IVR_RECORDINGS_DELETE_AT_TWILIO=1). Legal holds stop the first
two (and the third: a held recording stays at Twilio too).

Every deletion is chained as a `recording_deleted` event (recording_sid, sha256, where "archive"
or "twilio", reason "erasure", "purge" or "archived"). The SHA-256 stays in the chain, so the
decision and its `recording_archived` event still verify, and `ivr verify` does not call a
recording deleted from the archive missing. The event is appended after the deletion: a crash
in between leaves the audio gone and the next run chains it (deleting what is gone is harmless).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx

from consent_store import ConsentStore
from consent_store.events import DeletedReason, RecordingDeleted
from consent_store.exceptions import UnderLegalHold
from consent_store.recording_holds import (
    ArchivedAudio,
    archived_audio,
    businesses_of_subject,
    calls_of_subject,
    legal_holds,
    record_recording_deleted,
    recording_retention,
    recordings_of_calls,
    subject_of,
)
from consent_store.writing import utc_iso
from ivr.outbound_tls import tls_context
from ivr.recordings.archive import RecordingArchive
from ivr.recordings.exceptions import DeletionNotConfigured, TwilioApiError
from ivr.recordings.twilio_media import TwilioCredentials
from ivr.recordings.twilio_recordings import delete_recording
from ivr.settings import Settings

TIMEOUT = httpx.Timeout(20.0, connect=5.0)


@contextlib.asynccontextmanager
async def twilio_for_deletion(
    settings: Settings,
) -> AsyncIterator[tuple[httpx.AsyncClient, TwilioCredentials] | None]:
    """A client and credentials for deleting at Twilio when IVR_RECORDINGS_DELETE_AT_TWILIO=1
    (None otherwise); DeletionNotConfigured when it is set without credentials."""
    if not settings.recordings_delete_at_twilio:
        yield None
        return
    credentials = TwilioCredentials.from_settings(settings)
    if not credentials.configured:
        raise DeletionNotConfigured()
    async with httpx.AsyncClient(timeout=TIMEOUT, verify=tls_context()) as client:
        yield client, credentials


@dataclass
class DeletionReport:
    """What a purge or an erasure deleted, and what it kept and why."""

    from_archive: list[str] = field(default_factory=list)  # RecordingSids
    at_twilio: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # kept: a legal hold covers them
    errors: list[str] = field(default_factory=list)


def retention_cutoff(now: dt.datetime, years: int) -> dt.datetime:
    """The moment `years` years before `now` (29 February falls back to the 28th)."""
    try:
        return now.replace(year=now.year - years)
    except ValueError:
        return now.replace(year=now.year - years, day=28)


async def _delete_from_archive(
    store: ConsentStore,
    archive: RecordingArchive,
    audio: ArchivedAudio,
    live_sha256s: set[str],
    reason: DeletedReason,
    author: str,
) -> None:
    """Delete one archived recording's bytes (unless another recording still kept has the same
    bytes) and chain it."""
    if audio.sha256 not in live_sha256s:
        await archive.delete(audio.sha256)
    await record_recording_deleted(
        store,
        RecordingDeleted(audio.call_sid, audio.recording_sid, audio.sha256, "archive", reason, author),
    )


def _live_elsewhere(everything: list[ArchivedAudio], going: list[ArchivedAudio]) -> set[str]:
    """SHA-256s still needed by a recording that stays (the archive is content-addressed)."""
    leaving = {a.recording_sid for a in going}
    return {a.sha256 for a in everything if not a.deleted_from_archive and a.recording_sid not in leaving}


async def purge(
    store: ConsentStore,
    archive: RecordingArchive,
    author: str,
    now: dt.datetime | None = None,
    twilio: tuple[httpx.AsyncClient, TwilioCredentials] | None = None,
) -> DeletionReport:
    """Delete archived audio older than its business's retention period (counted from the
    decision), except what a legal hold covers; at Twilio too when `twilio` is given."""
    now = now or dt.datetime.now(dt.UTC)
    years = await recording_retention(store)
    holds = await legal_holds(store)
    everything = await archived_audio(store)
    report = DeletionReport()
    expired: list[ArchivedAudio] = []
    for audio in everything:
        if audio.deleted_from_archive or audio.business not in years:
            continue
        decided = audio.decided_at or audio.archived_at
        if decided >= utc_iso(retention_cutoff(now, years[audio.business])):
            continue
        if holds.covers(audio.subject, audio.business):
            report.held.append(audio.recording_sid)
            continue
        expired.append(audio)
    live = _live_elsewhere(everything, expired)
    for audio in expired:
        await _delete_from_archive(store, archive, audio, live, "purge", author)
        report.from_archive.append(audio.recording_sid)
        if twilio is not None and not audio.deleted_at_twilio:
            await _delete_at_twilio(
                store, twilio, audio.call_sid, audio.recording_sid, audio.sha256, "purge", author, report
            )
    return report


async def _delete_at_twilio(
    store: ConsentStore,
    twilio: tuple[httpx.AsyncClient, TwilioCredentials],
    call_sid: str,
    recording_sid: str,
    sha256: str | None,
    reason: DeletedReason,
    author: str,
    report: DeletionReport,
) -> None:
    client, credentials = twilio
    try:
        await delete_recording(client, credentials, recording_sid)  # False: already gone there
    except TwilioApiError as exc:
        report.errors.append(str(exc))
        return
    await record_recording_deleted(
        store, RecordingDeleted(call_sid, recording_sid, sha256, "twilio", reason, author)
    )
    report.at_twilio.append(recording_sid)


async def erase_audio(
    store: ConsentStore,
    archive: RecordingArchive,
    phone: str,
    author: str,
    twilio: tuple[httpx.AsyncClient, TwilioCredentials] | None = None,
) -> DeletionReport:
    """Delete a caller's archived recordings (and at Twilio when `twilio` is given), chained
    with reason "erasure". UnderLegalHold, deleting nothing, when a hold covers the phone or
    one of its calls' businesses. Call before `store.forget_phone`, which unlinks the phone."""
    report = DeletionReport()
    subject = await subject_of(store, phone)
    if subject is None:
        return report
    calls = await calls_of_subject(store, subject)
    audio = await archived_audio(store, calls)
    holds = await legal_holds(store)
    if subject in holds.subjects:
        raise UnderLegalHold(phone)
    for business in sorted(
        {a.business for a in audio if a.business} | await businesses_of_subject(store, subject)
    ):
        if business in holds.businesses:
            raise UnderLegalHold(f"{phone}'s business {business!r}")
    going = [a for a in audio if not a.deleted_from_archive]
    live = _live_elsewhere(await archived_audio(store), going)
    for item in going:
        await _delete_from_archive(store, archive, item, live, "erasure", author)
        report.from_archive.append(item.recording_sid)
    if twilio is not None:
        done = {a.recording_sid for a in audio if a.deleted_at_twilio}
        sha = {a.recording_sid: a.sha256 for a in audio}
        for call_sid, recording_sid in await recordings_of_calls(store, calls):
            if recording_sid not in done:
                await _delete_at_twilio(
                    store, twilio, call_sid, recording_sid, sha.get(recording_sid), "erasure", author, report
                )
    return report


async def delete_archived_at_twilio(
    store: ConsentStore, client: httpx.AsyncClient, credentials: TwilioCredentials
) -> tuple[int, list[str]]:
    """Delete at Twilio every archived recording not yet deleted there and not under a legal
    hold (IVR_RECORDINGS_DELETE_AT_TWILIO=1); chained with reason "archived"."""
    holds = await legal_holds(store)
    report = DeletionReport()
    for audio in await archived_audio(store):
        if audio.deleted_at_twilio or holds.covers(audio.subject, audio.business):
            continue
        await _delete_at_twilio(
            store,
            (client, credentials),
            audio.call_sid,
            audio.recording_sid,
            audio.sha256,
            "archived",
            "sync",
            report,
        )
    return len(report.at_twilio), report.errors
