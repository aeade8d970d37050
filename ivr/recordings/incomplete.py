"""Why a decision's recording is still missing, in words, for /audit/incomplete.

Built from the log (`consent_store.recording_gaps`: recording callbacks, Twilio's Recordings list
answers chained by `ivr recordings sync`) and from this process's fetcher (recordings it is
failing to fetch, and since when). Read-only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from consent_store import ConsentStore
from consent_store.recording_gaps import RecordingGap, recording_gaps
from consent_store.writing import utc_iso
from ivr.recordings.fetch import FetchFailure

Why = Literal["absent", "failed", "fetch failing", "fetch pending", "not at Twilio yet", "not asked yet"]


@dataclass(frozen=True)
class MissingRecording:
    seq: int
    recorded_at: str
    call_sid: str
    business: str
    action: str
    why: Why
    detail: str
    error_code: str | None = None
    since: str | None = None  # fetch failing since (UTC)


def _explain(gap: RecordingGap, failures: dict[str, FetchFailure], grace_minutes: int) -> MissingRecording:
    def row(why: Why, detail: str, code: str | None = None, since: str | None = None) -> MissingRecording:
        return MissingRecording(
            gap.seq, gap.recorded_at, gap.call_sid, gap.business, gap.action, why, detail, code, since
        )

    if gap.completed_sid is not None:
        failure = failures.get(gap.completed_sid)
        if failure is not None:
            return row(
                "fetch failing",
                f"recording {gap.completed_sid} is completed at Twilio but could not be fetched"
                f" ({failure.attempts} attempt(s), last: {failure.last_error})",
                since=failure.since,
            )
        return row(
            "fetch pending", f"recording {gap.completed_sid} is completed; its audio is not archived yet"
        )
    final = [r for r in gap.reports if r.status in ("absent", "failed")]
    if final or gap.check in ("absent", "failed"):
        status = final[-1].status if final else str(gap.check)
        code = next((r.error_code for r in reversed(final) if r.error_code), None) or gap.check_error_code
        by = (
            "its recording callback"
            if final and final[-1].found_by == "callback"
            else "Twilio's Recordings list"
        )
        return row(status, f"Twilio reported the recording {status} ({by})", code)  # type: ignore[arg-type]
    if gap.check is not None:
        said = "no recording for this call" if gap.check == "none" else f"a recording {gap.check}"
        return row("not at Twilio yet", f"Twilio's Recordings list had {said} (asked {gap.checked_at})")
    return row(
        "not asked yet",
        f"no recording callback after {grace_minutes} minutes; 'ivr recordings sync' has not asked yet",
    )


async def missing_recordings(
    store: ConsentStore,
    failures: list[FetchFailure],
    businesses: tuple[str, ...] | None,
    grace_minutes: int,
    archiving: bool = True,
    now: dt.datetime | None = None,
) -> list[MissingRecording]:
    """Decisions (of `businesses`, None: all) without archived audio, newest first, with why.
    Without archiving (no Twilio credentials) a completed recording at Twilio is not missing."""
    now = now or dt.datetime.now(dt.UTC)
    before = utc_iso(now - dt.timedelta(minutes=grace_minutes))
    by_sid = {f.recording_sid: f for f in failures}
    gaps = await recording_gaps(store, before, businesses)
    return [_explain(gap, by_sid, grace_minutes) for gap in gaps if archiving or gap.completed_sid is None]
