"""What both backends' single writers share: batch size, checkpoint interval, record times, subjects.

A neutral home, so the PostgreSQL writer does not import the SQLite one.
"""

from __future__ import annotations

import datetime as dt
import hashlib

# The most queued appends one transaction (one commit, one fsync) takes.
MAX_BATCH = 256
# A checkpoint row is written whenever the chain passes a multiple of this.
CHECKPOINT_EVERY = 256


def utc_now() -> str:
    """UTC time with microseconds, ISO-8601 with a Z: sorts as text."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def subject_commitment(salt: str, phone: str) -> str:
    """SHA-256 (hex) of a subject's salt followed by its phone: what binds a subject to a phone."""
    return hashlib.sha256((salt + phone).encode("utf-8")).hexdigest()
