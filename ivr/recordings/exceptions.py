"""Errors of the recording archive and of fetching audio from Twilio, each carrying what failed."""

from __future__ import annotations


class RecordingError(Exception):
    """Base of this package's errors."""


class ArchiveError(RecordingError):
    """The archive could not be read or written (a full disk, S3 refusing, a bad URL)."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"recording archive {where}: {reason}")
        self.where = where
        self.reason = reason


class RecordingMissing(RecordingError):
    """The archive holds no recording with this SHA-256."""

    def __init__(self, sha256: str, where: str = "") -> None:
        super().__init__(f"recording {sha256} is not in the archive{f' ({where})' if where else ''}")
        self.sha256 = sha256
        self.where = where


class FetchError(RecordingError):
    """Twilio did not hand over a recording's whole audio; nothing was archived."""

    def __init__(self, recording_sid: str, reason: str, *, status: int | None = None) -> None:
        super().__init__(f"recording {recording_sid}: {reason}")
        self.recording_sid = recording_sid
        self.reason = reason
        self.status = status  # the HTTP status Twilio answered with, if it answered


class NoCredentials(FetchError):
    """No Twilio account and secret to fetch recordings with (TWILIO_ACCOUNT_SID and a token or key)."""


class TwilioApiError(RecordingError):
    """Twilio's REST API refused or did not answer; `status` None when it did not answer."""

    def __init__(self, what: str, reason: str, status: int | None = None, code: int | None = None) -> None:
        super().__init__(f"{what}: {reason}")
        self.what = what
        self.reason = reason
        self.status = status
        self.code = code


class DeletionNotConfigured(RecordingError):
    """IVR_RECORDINGS_DELETE_AT_TWILIO=1 without credentials to delete with."""

    def __init__(self) -> None:
        super().__init__(
            "IVR_RECORDINGS_DELETE_AT_TWILIO=1 needs TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN"
            " (or TWILIO_API_KEY and TWILIO_API_SECRET); nothing was deleted"
        )
