"""Re-hashing every archived recording against the SHA-256 its `recording_archived` event chained.

`ivr verify` runs this after the chain itself verified. A recording whose bytes changed, or
that is gone from the archive, is a problem; one deleted on purpose (a `recording_deleted`
event for the archive: erasure or retention) is not. Reads only.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from consent_store import ConsentStore
from consent_store.events import ArchivedRecording
from ivr.recordings.archive import RecordingArchive, open_archive
from ivr.recordings.exceptions import ArchiveError, RecordingMissing

CONCURRENT_CHECKS = 8
PAGE = 1000

ProblemKind = Literal["changed", "missing", "unreadable"]


@dataclass(frozen=True)
class RecordingProblem:
    call_sid: str
    recording_sid: str
    sha256: str  # as chained
    where: str  # where the archive keeps it now
    kind: ProblemKind
    detail: str

    def __str__(self) -> str:
        return f"recording {self.recording_sid} of call {self.call_sid} ({self.where}): {self.detail}"


@dataclass(frozen=True)
class RecordingsCheck:
    checked: int  # recordings re-hashed
    deleted: int  # archived, then deleted on purpose: not checked
    problems: tuple[RecordingProblem, ...]

    @property
    def intact(self) -> bool:
        return not self.problems


async def _check(archive: RecordingArchive, recording: ArchivedRecording) -> RecordingProblem | None:
    where = archive.path_of(recording.sha256)

    def problem(kind: ProblemKind, detail: str) -> RecordingProblem:
        return RecordingProblem(
            recording.call_sid, recording.recording_sid, recording.sha256, where, kind, detail
        )

    try:
        data = await archive.get(recording.sha256)
    except RecordingMissing:
        return problem("missing", f"missing from the archive (chained sha256 {recording.sha256})")
    except ArchiveError as exc:
        return problem("unreadable", f"cannot be read: {exc.reason}")
    digest = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
    if digest != recording.sha256:
        return problem(
            "changed",
            f"bytes changed: sha256 is now {digest}, the chain says {recording.sha256}"
            f" ({len(data)} bytes, {recording.bytes} archived)",
        )
    return None


async def verify_recordings(
    store: ConsentStore,
    archive: RecordingArchive,
    on_progress: Callable[[int], None] | None = None,
    concurrency: int = CONCURRENT_CHECKS,
) -> RecordingsCheck:
    """Re-hash every archived recording (several at once); the problems found, in chain order."""
    deleted = await store.deleted_recordings()
    limit = asyncio.Semaphore(concurrency)
    done = 0
    skipped = 0
    problems: list[RecordingProblem] = []

    async def check(recording: ArchivedRecording) -> RecordingProblem | None:
        nonlocal done
        async with limit:
            found = await _check(archive, recording)
        done += 1
        if on_progress is not None:
            on_progress(done)
        return found

    after = 0
    while True:
        page = await store.archived_recordings(after, PAGE)
        if not page:
            break
        after = page[-1].seq
        wanted = [r for r in page if r.recording_sid not in deleted]
        skipped += len(page) - len(wanted)
        problems += [p for p in await asyncio.gather(*map(check, wanted)) if p is not None]
    return RecordingsCheck(done, skipped, tuple(problems))


def recordings_line(check: RecordingsCheck | None) -> str:
    """What `ivr verify` adds to its ok line about the recordings ('' when they were skipped)."""
    if check is None or (check.checked == 0 and check.deleted == 0):
        return ""  # nothing archived (a log without recordings): the ok line says what it always said
    noun = "recording" if check.checked == 1 else "recordings"
    deleted = f", {check.deleted} deleted on purpose (not checked)" if check.deleted else ""
    return f"; {check.checked} archived {noun} re-hashed, all match{deleted}"


def archive_from_env() -> RecordingArchive:
    """The archive IVR_RECORDINGS_URL names, for a command; CliFailure (exit 2) if it cannot be."""
    from ivr.cli.support import settings_from_env
    from ivr.exceptions import CliFailure

    try:
        return open_archive(settings_from_env())
    except ValueError as exc:
        raise CliFailure(str(exc), 2) from exc
