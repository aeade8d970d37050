"""Archiving recordings in the background: fetch from Twilio, hash, keep, then chain.

The recording webhook stores a completed recording, calls `wake()` and answers at once;
this task does the rest. What is still to fetch is derived from the log
(`store.recordings_to_fetch`), so a crash, a restart or a Twilio outage loses nothing:
the next pass (or the next process) finds the recording again. A failing recording is
retried with exponential backoff (IVR_WEBHOOK_RETRY_SECONDS doubled per failure, capped at
MAX_BACKOFF_SECONDS); its failure is kept in memory for the operator (`failures()`).
`recording_archived` is appended only after the bytes are durable in the archive.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
from starlette.applications import Starlette

from consent_store import ConsentStore, StoreError
from consent_store.events import FoundBy, RecordingArchived, RecordingToFetch, StoredEvent
from consent_store.url import parse_database_url
from consent_store.writing import utc_now
from ivr.background import running_task
from ivr.outbound_tls import tls_context
from ivr.recordings.archive import RecordingArchive, is_local, open_archive
from ivr.recordings.exceptions import FetchError, NoCredentials, RecordingError
from ivr.recordings.twilio_media import TIMEOUT, TwilioCredentials, fetch_media
from ivr.settings import Settings

LOG = logging.getLogger(__name__)

POLL_SECONDS = 30.0  # a pass even without a wake-up: recordings another process stored
MAX_BACKOFF_SECONDS = 900.0
CONCURRENT_FETCHES = 8
PAGE = 500


@dataclass(frozen=True)
class ArchiveDeps:
    """What archiving a recording needs: the store, the archive, an HTTP client, credentials."""

    store: ConsentStore
    archive: RecordingArchive
    client: httpx.AsyncClient
    credentials: TwilioCredentials
    timeout: httpx.Timeout = field(default_factory=lambda: TIMEOUT)


@dataclass(frozen=True)
class FetchFailure:
    """A recording this process could not archive yet, and since when."""

    call_sid: str
    recording_sid: str
    since: str  # UTC, ISO 8601: the first failure
    attempts: int
    last_error: str
    status: int | None  # Twilio's HTTP status, if it answered
    next_try_in: float  # seconds


async def archive_recording(
    deps: ArchiveDeps,
    call_sid: str,
    recording_sid: str,
    url: str | None,
    duration: int | None,
    found_by: FoundBy,
) -> StoredEvent:
    """Fetch a recording's audio, keep it in the archive, then chain `recording_archived`.

    Idempotent by RecordingSid (a repeat returns the first event). Raises FetchError
    (Twilio did not hand over the whole audio), ArchiveError, or StoreError; in every
    case nothing half-done is kept: the archive holds whole objects only, and the event
    is appended after the bytes are durable."""
    media = await fetch_media(deps.client, deps.credentials, recording_sid, url, deps.timeout)
    sha256 = hashlib.sha256(media.data).hexdigest()
    await deps.archive.put(media.data, sha256)
    return await deps.store.record_archived(
        RecordingArchived(
            call_sid=call_sid,
            recording_sid=recording_sid,
            sha256=sha256,
            bytes=len(media.data),
            media_type=media.media_type,
            duration=duration,
            location=deps.archive.path_of(sha256),
            found_by=found_by,
            url=url,
        )
    )


@dataclass
class _Pending:
    recording: RecordingToFetch
    attempts: int = 0
    since: str = ""
    last_error: str = ""
    status: int | None = None
    not_before: float = 0.0


@dataclass
class RecordingFetcher:
    """Runs beside the server: a pass at each wake-up, every POLL_SECONDS, and when a retry is due."""

    deps: ArchiveDeps
    retry_base_seconds: float = 2.0
    concurrency: int = CONCURRENT_FETCHES
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _scanned_seq: int = 0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    archived: int = 0  # recordings this process archived (for the benchmark and logs)

    def wake(self) -> None:
        """A completed recording was just stored: look for it now (never waits)."""
        self._wake.set()

    def failures(self) -> list[FetchFailure]:
        """Recordings failing to archive in this process, oldest failure first."""
        now = time.monotonic()
        return sorted(
            (
                FetchFailure(
                    p.recording.call_sid,
                    p.recording.recording_sid,
                    p.since,
                    p.attempts,
                    p.last_error,
                    p.status,
                    max(0.0, p.not_before - now),
                )
                for p in self._pending.values()
                if p.attempts
            ),
            key=lambda f: f.since,
        )

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.archive_due()
            except StoreError as exc:
                LOG.warning("recording archiving paused: %s", exc)
            except Exception:  # a bug must not stop archiving for the life of the process
                LOG.exception("recording archiving pass failed; trying again")
            await self._sleep()

    async def _sleep(self) -> None:
        retry_at = min((p.not_before for p in self._pending.values()), default=None)
        wait = POLL_SECONDS if retry_at is None else min(POLL_SECONDS, max(0.05, retry_at - time.monotonic()))
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that
        # lands as the wake-up completes, and the app's shutdown then waits for ever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._wake.wait()

    async def archive_due(self) -> int:
        """Archive every recording due now (new ones and retries); return how many were archived."""
        done = 0
        while True:
            found = await self.deps.store.recordings_to_fetch(self._scanned_seq, PAGE)
            for recording in found:
                self._pending.setdefault(recording.recording_sid, _Pending(recording))
                self._scanned_seq = max(self._scanned_seq, recording.seq)
            due = [p for p in self._pending.values() if p.not_before <= time.monotonic()]
            if due:
                limit = asyncio.Semaphore(self.concurrency)
                results = await asyncio.gather(*(self._attempt(p, limit) for p in due))
                done += sum(results)
            if len(found) < PAGE:
                return done

    async def _attempt(self, pending: _Pending, limit: asyncio.Semaphore) -> bool:
        recording = pending.recording
        async with limit:
            try:
                await archive_recording(
                    self.deps,
                    recording.call_sid,
                    recording.recording_sid,
                    recording.url,
                    recording.duration,
                    "callback",
                )
            except (RecordingError, StoreError) as exc:
                self._failed(pending, exc)
                return False
            except Exception as exc:
                LOG.exception("archiving recording %s failed unexpectedly", recording.recording_sid)
                self._failed(pending, exc)
                return False
        del self._pending[recording.recording_sid]
        self.archived += 1
        return True

    def _failed(self, pending: _Pending, exc: Exception) -> None:
        pending.attempts += 1
        pending.since = pending.since or utc_now()
        pending.last_error = str(exc)
        pending.status = exc.status if isinstance(exc, FetchError) else None
        wait = min(self.retry_base_seconds * 2 ** (pending.attempts - 1), MAX_BACKOFF_SECONDS)
        if isinstance(exc, NoCredentials):
            wait = MAX_BACKOFF_SECONDS  # nothing will change until the process is restarted
        pending.not_before = time.monotonic() + wait
        log = LOG.warning if pending.attempts == 1 or pending.attempts % 10 == 0 else LOG.info
        log("could not archive %s (attempt %d, retrying in %.0f s)", exc, pending.attempts, wait)


def warn_about_setup(settings: Settings, archive: RecordingArchive, credentials: TwilioCredentials) -> None:
    """Log at start what would keep recordings from being archived as an operator expects."""
    if parse_database_url(settings.database_url).scheme == "postgresql" and is_local(archive.url):
        LOG.warning(
            "recordings are archived in a local folder (%s) while the log is on PostgreSQL: several"
            " processes would not share it; set IVR_RECORDINGS_URL=s3://bucket/prefix",
            archive.url,
        )
    # Without TWILIO_AUTH_TOKEN the service takes no real calls (the runtime says so): nothing to fetch.
    if settings.twilio_auth_token and not credentials.configured:
        LOG.warning(
            "recordings are not archived: set TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN (or"
            " TWILIO_API_KEY and TWILIO_API_SECRET) so completed recordings are fetched from Twilio"
        )


def fetcher_of(app: Starlette) -> RecordingFetcher | None:
    """The running app's fetcher (None before start-up or in an app without one)."""
    fetcher: RecordingFetcher | None = getattr(app.state, "recording_fetcher", None)
    return fetcher


def wake(app: Starlette) -> None:
    """Tell the app's fetcher a completed recording was stored (the webhook's one call)."""
    fetcher = fetcher_of(app)
    if fetcher is not None:
        fetcher.wake()


@contextlib.asynccontextmanager
async def running_fetcher(
    app: Starlette, settings: Settings, store: ConsentStore
) -> AsyncIterator[RecordingFetcher]:
    """Run the fetcher for the life of the app (as `app.state.recording_fetcher`)."""
    archive = open_archive(settings)
    credentials = TwilioCredentials.from_settings(settings)
    warn_about_setup(settings, archive, credentials)
    limits = httpx.Limits(
        max_connections=CONCURRENT_FETCHES * 2, max_keepalive_connections=CONCURRENT_FETCHES
    )
    async with httpx.AsyncClient(limits=limits, verify=tls_context()) as client:
        fetcher = RecordingFetcher(
            ArchiveDeps(store, archive, client, credentials), settings.webhook_retry_seconds
        )
        app.state.recording_fetcher = fetcher
        # Without credentials every fetch would fail: the warning above says so once.
        fetching = (
            running_task(fetcher.run(), "recording-archive")
            if credentials.configured
            else contextlib.nullcontext()
        )
        try:
            async with fetching:
                yield fetcher
        finally:
            app.state.recording_fetcher = None
