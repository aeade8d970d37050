"""What both backends' single writers share: batch size, checkpoint interval, record times, subjects.

A neutral home, so the PostgreSQL writer does not import the SQLite one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time

# The most queued appends one transaction (one commit, one fsync) takes.
MAX_BATCH = 256
# A checkpoint row is written whenever the chain passes a multiple of this.
CHECKPOINT_EVERY = 256


# The last second formatted and its text, one tuple swapped whole (the writer thread stamps too).
_SECOND: tuple[int, str] = (-1, "")


def utc_text(ns: int) -> str:
    """Nanoseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC, microseconds truncated):
    what `datetime.strftime("%Y-%m-%dT%H:%M:%S.%fZ")` gives for that instant, at about a fifth of
    its cost (the seconds are formatted once a second). Every webhook stamps what it keeps: the
    strftime was 11% of a status callback's time on the event loop (tests/test_utc_time.py)."""
    global _SECOND
    seconds, micros = divmod(ns // 1000, 1_000_000)
    cached = _SECOND
    if cached[0] != seconds:
        cached = _SECOND = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{cached[1]}.{micros:06d}Z"


def utc_now() -> str:
    """UTC time with microseconds, ISO-8601 with a Z: sorts as text."""
    return utc_text(time.time_ns())


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def utc_iso(moment: dt.datetime) -> str:
    """`moment` as every record time is written (`utc_text`): `YYYY-MM-DDTHH:MM:SS.ffffffZ`, what
    `moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")` gives for a UTC or naive (taken as UTC) datetime;
    an aware one in another zone is converted to UTC first."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return utc_text((moment - _EPOCH) // _MICROSECOND * 1000)


def subject_commitment(salt: str, phone: str) -> str:
    """SHA-256 (hex) of a subject's salt followed by its phone: what binds a subject to a phone."""
    return hashlib.sha256((salt + phone).encode("utf-8")).hexdigest()
