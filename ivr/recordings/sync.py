"""Reconciliation: recordings whose status callback never came are found by asking Twilio.

For each decision of a real call older than `older_than` seconds (and younger than
RECONCILE_DAYS) with no completed recording, Twilio's Recordings list is asked by CallSid. A
completed recording it lists is attached (a chained `recording` event with `found_by:
reconciliation`) and archived (`recording_archived`, found_by reconciliation); otherwise what it
said is chained once as a `recording_check` (none, absent with its ErrorCode, processing...),
which /audit/incomplete shows. Everything is idempotent: a recording already attached or
archived is not chained twice. With IVR_RECORDINGS_DELETE_AT_TWILIO=1 each pass also deletes at
Twilio what is archived (ivr.recordings.retention). `ivr recordings sync` runs one pass;
`ivr serve` runs one every IVR_RECORDINGS_SYNC_SECONDS (`running_reconciler`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx

from consent_store import ConsentStore, StoreError
from consent_store.events import RecordingCheck, RecordingStatus
from consent_store.recording_gaps import calls_to_reconcile
from consent_store.recording_holds import record_recording_check
from consent_store.writing import utc_iso
from ivr.background import running_task
from ivr.outbound_tls import tls_context
from ivr.recordings.archive import RecordingArchive
from ivr.recordings.exceptions import NoCredentials, RecordingError, TwilioApiError
from ivr.recordings.fetch import ArchiveDeps, archive_recording
from ivr.recordings.retention import delete_archived_at_twilio
from ivr.recordings.twilio_media import TwilioCredentials
from ivr.recordings.twilio_recordings import TwilioRecording, list_call_recordings
from ivr.settings import Settings

LOG = logging.getLogger(__name__)

DEFAULT_OLDER_THAN_SECONDS = 900
RECONCILE_DAYS = 30  # older decisions are not asked about again (Twilio's list is per account)
TIMEOUT = httpx.Timeout(20.0, connect=5.0)


@dataclass
class SyncReport:
    """What one pass did."""

    asked: int = 0
    attached: int = 0
    archived: int = 0
    not_found: int = 0  # Twilio lists no completed recording for the call
    deleted_at_twilio: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        line = (
            f"Asked Twilio about {self.asked} call(s): {self.attached} recording(s) found and attached,"
            f" {self.archived} archived, {self.not_found} with no completed recording at Twilio"
        )
        if self.deleted_at_twilio:
            line += f"; {self.deleted_at_twilio} deleted at Twilio once archived"
        if self.errors:
            line += f"; {len(self.errors)} error(s), first: {self.errors[0]}"
        return line + "."


def _outcome(listed: list[TwilioRecording]) -> RecordingCheck | None:
    """What to chain for a call whose list holds no completed recording (None: nothing listed
    yet is final, e.g. still processing, and a later pass asks again)."""
    if not listed:
        return None
    final = [r for r in listed if r.status in ("absent", "failed", "deleted")]
    chosen = final[0] if final else listed[0]
    return RecordingCheck(chosen.call_sid, chosen.status or "unknown", chosen.sid, chosen.error_code)


async def reconcile(
    deps: ArchiveDeps,
    settings: Settings,
    older_than: float = DEFAULT_OLDER_THAN_SECONDS,
    now: dt.datetime | None = None,
) -> SyncReport:
    """One pass (see the module docstring). NoCredentials without a Twilio account to ask."""
    if not deps.credentials.configured:
        raise NoCredentials(
            "-",
            "reconciliation needs Twilio credentials: set TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN"
            " (or TWILIO_API_KEY and TWILIO_API_SECRET)",
        )
    now = now or dt.datetime.now(dt.UTC)
    before = utc_iso(now - dt.timedelta(seconds=older_than))
    since = utc_iso(now - dt.timedelta(days=RECONCILE_DAYS))
    report = SyncReport()
    for call in await calls_to_reconcile(deps.store, before, since):
        report.asked += 1
        try:
            listed = await list_call_recordings(deps.client, deps.credentials, call.call_sid)
        except TwilioApiError as exc:
            report.errors.append(str(exc))
            if exc.status in (401, 403):
                break  # wrong credentials: every other call would fail the same way
            continue
        completed = [r for r in listed if r.status == "completed"]
        if not completed:
            report.not_found += 1
            check = _outcome(listed) or RecordingCheck(call.call_sid, "none", None, None)
            await record_recording_check(deps.store, check)
            continue
        for recording in completed:
            # Archived first, attached second: until the `recording` event exists the fetcher's
            # to-do list (derived from the log) cannot see it, so it cannot archive it first as
            # found by callback. If archiving fails it is attached all the same and the fetcher
            # retries it; a crash in between is found again by the next pass (both idempotent).
            try:
                await archive_recording(
                    deps,
                    call.call_sid,
                    recording.sid,
                    recording.media_url,
                    recording.duration,
                    "reconciliation",
                )
                report.archived += 1
            except (RecordingError, StoreError) as exc:
                report.errors.append(str(exc))
            attached = await deps.store.attach_recording(
                RecordingStatus(
                    call_sid=call.call_sid,
                    recording_sid=recording.sid,
                    status="completed",
                    url=recording.media_url,
                    duration=recording.duration,
                    found_by="reconciliation",
                )
            )
            report.attached += 0 if attached.duplicate else 1
    if settings.recordings_delete_at_twilio:
        deleted, errors = await delete_archived_at_twilio(deps.store, deps.client, deps.credentials)
        report.deleted_at_twilio += deleted
        report.errors += errors
    return report


@contextlib.asynccontextmanager
async def reconciliation_deps(
    store: ConsentStore, settings: Settings, archive: RecordingArchive
) -> AsyncIterator[ArchiveDeps]:
    async with httpx.AsyncClient(timeout=TIMEOUT, verify=tls_context()) as client:
        yield ArchiveDeps(store, archive, client, TwilioCredentials.from_settings(settings))


async def _loop(deps: ArchiveDeps, settings: Settings, interval: float) -> None:
    while True:
        try:
            # Read at each pass (not bound at import): decisions younger than this are not asked about.
            report = await reconcile(deps, settings, DEFAULT_OLDER_THAN_SECONDS)
            if report.asked or report.errors or report.deleted_at_twilio:
                (LOG.warning if report.errors else LOG.info)("recordings sync: %s", report.summary())
        except (RecordingError, StoreError) as exc:
            LOG.warning("recordings sync failed: %s", exc)
        except Exception:  # a bug must not end the loop for the life of the server
            LOG.exception("recordings sync failed")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def running_reconciler(
    store: ConsentStore, settings: Settings, archive: RecordingArchive
) -> AsyncIterator[None]:
    """Reconcile every IVR_RECORDINGS_SYNC_SECONDS for the life of the app (not at all when 0 or
    when there are no Twilio credentials to ask with)."""
    interval = settings.recordings_sync_seconds
    if interval <= 0 or not TwilioCredentials.from_settings(settings).configured:
        yield
        return
    async with reconciliation_deps(store, settings, archive) as deps:
        async with running_task(_loop(deps, settings, interval), "recordings-sync"):
            yield
