"""The recording archive: audio kept content-addressed by SHA-256, never a partial object.

`open_archive(settings)` gives the archive IVR_RECORDINGS_URL names: `file:///abs/path` (a
folder, by default `<database file>.recordings/` beside the SQLite database) or
`s3://bucket/prefix` (ivr.recordings.s3). A local file is written to a temporary name in
the same folder, fsynced, renamed into place, and the folder fsynced: a crash leaves the
whole file or none. Objects are named by the SHA-256 of their bytes (`ab/cd/<sha256>.wav`),
so writing the same audio twice is harmless. This module never touches the consent store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from consent_store.url import parse_database_url
from ivr.recordings.exceptions import ArchiveError, RecordingMissing
from ivr.settings import Settings

LOG = logging.getLogger(__name__)

# Every recording is fetched as WAV (see docs/recordings.md), so every object is one.
MEDIA_EXTENSION = ".wav"
MEDIA_TYPE = "audio/x-wav"  # what Twilio's API answers a .wav with
# When the database is PostgreSQL and IVR_RECORDINGS_URL is unset (a warning says so).
POSTGRES_DEFAULT_FOLDER = "ivr.recordings"

_SHA256 = re.compile("[0-9a-f]{64}")


def check_sha256(sha256: str) -> str:
    """The digest itself, if it is 64 lower-case hex digits (it becomes part of a path)."""
    if _SHA256.fullmatch(sha256) is None:
        raise ValueError(f"{sha256[:70]!r} is not a SHA-256 (64 lower-case hex digits)")
    return sha256


def object_name(sha256: str) -> str:
    """Where a recording lies below the archive's root: `ab/cd/<sha256>.wav`."""
    check_sha256(sha256)
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}{MEDIA_EXTENSION}"


class RecordingArchive(Protocol):
    """Where recordings are kept; every method is safe to call from several tasks."""

    url: str  # where it is kept, as configured: "file:///abs/path" or "s3://bucket/prefix"

    async def put(self, data: bytes, sha256: str) -> None:
        """Keep `data` (whose SHA-256 is `sha256`) durably and atomically; idempotent."""
        ...

    async def get(self, sha256: str) -> bytes:
        """The bytes kept under `sha256`; RecordingMissing if there are none."""
        ...

    async def size(self, sha256: str) -> int | None:
        """How many bytes are kept under `sha256`; None when absent."""
        ...

    async def delete(self, sha256: str) -> bool:
        """Remove what is kept under `sha256`; True if it was there."""
        ...

    def path_of(self, sha256: str) -> str:
        """Where this recording lies (a file path or an s3:// URL), for the chain and messages."""
        ...


class LocalArchive:
    """A folder on this machine (one process, or several sharing one file system)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.url = self.root.as_uri()

    def path_of(self, sha256: str) -> str:
        return str(self.root / object_name(sha256))

    async def put(self, data: bytes, sha256: str) -> None:
        await asyncio.to_thread(self._put, data, sha256)

    def _put(self, data: bytes, sha256: str) -> None:
        target = Path(self.path_of(sha256))
        try:
            if target.exists() and target.stat().st_size == len(data):
                return  # the same bytes: the name is their hash
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(prefix=".incoming-", dir=target.parent)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temporary, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
            _fsync_dir(target.parent)
        except OSError as exc:
            raise ArchiveError(self.url, f"could not write {target}: {exc.strerror or exc}") from exc

    async def get(self, sha256: str) -> bytes:
        path = Path(self.path_of(sha256))
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise RecordingMissing(sha256, str(path)) from None
        except OSError as exc:
            raise ArchiveError(self.url, f"could not read {path}: {exc.strerror or exc}") from exc

    async def size(self, sha256: str) -> int | None:
        path = Path(self.path_of(sha256))
        try:
            return (await asyncio.to_thread(path.stat)).st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ArchiveError(self.url, f"could not read {path}: {exc.strerror or exc}") from exc

    async def delete(self, sha256: str) -> bool:
        path = Path(self.path_of(sha256))
        try:
            await asyncio.to_thread(path.unlink)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise ArchiveError(self.url, f"could not delete {path}: {exc.strerror or exc}") from exc
        await asyncio.to_thread(_fsync_dir, path.parent)
        return True


def _fsync_dir(folder: Path) -> None:
    """Make a rename or unlink in `folder` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def recordings_url(settings: Settings) -> str:
    """IVR_RECORDINGS_URL, or the default: `<database file>.recordings/` beside a SQLite database,
    `./ivr.recordings/` with PostgreSQL."""
    if settings.recordings_url:
        return settings.recordings_url
    database = parse_database_url(settings.database_url)
    if database.path is not None:
        folder = database.path.resolve().with_name(database.path.name + ".recordings")
    else:
        folder = Path(POSTGRES_DEFAULT_FOLDER).resolve()
    return folder.as_uri()


def is_local(url: str) -> bool:
    return url.startswith("file:")


def open_archive(settings: Settings) -> RecordingArchive:
    """The archive IVR_RECORDINGS_URL names (see recordings_url); ValueError for a bad URL.

    Nothing is created until the first recording is written."""
    url = recordings_url(settings)
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"IVR_RECORDINGS_URL {url!r}: use file:///absolute/path (three slashes)")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ValueError(f"IVR_RECORDINGS_URL {url!r}: the path must be absolute")
        root = Path(path)
        if root.exists() and not root.is_dir():
            raise ValueError(f"IVR_RECORDINGS_URL {url!r}: {root} is not a folder")
        return LocalArchive(root)
    if parts.scheme == "s3":
        from ivr.recordings.s3 import S3Archive

        return S3Archive.from_url(url)
    raise ValueError(f"IVR_RECORDINGS_URL {url!r}: use file:///path or s3://bucket/prefix")
