"""The recording archive on S3 or an S3-compatible store (MinIO, Ceph): `s3://bucket/prefix`.

Credentials, region and endpoint come from the usual AWS environment (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL, profiles...), read by boto3 itself.
An S3 PUT is atomic (a reader sees the whole object or none), so there is no temporary
name; boto3 blocks, so every call runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any
from urllib.parse import urlsplit

from ivr.recordings.archive import MEDIA_TYPE, object_name
from ivr.recordings.exceptions import ArchiveError, RecordingMissing

_MISSING = ("404", "NoSuchKey", "NotFound")


class S3Archive:
    """Objects `<prefix>/ab/cd/<sha256>.wav` in one bucket."""

    def __init__(self, bucket: str, prefix: str) -> None:
        if not bucket:
            raise ValueError("IVR_RECORDINGS_URL: s3:// needs a bucket (s3://bucket/prefix)")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._client: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str) -> S3Archive:
        parts = urlsplit(url)
        return cls(parts.netloc, parts.path)

    def key_of(self, sha256: str) -> str:
        name = object_name(sha256)
        return f"{self.prefix}/{name}" if self.prefix else name

    def path_of(self, sha256: str) -> str:
        return f"s3://{self.bucket}/{self.key_of(sha256)}"

    def client(self) -> Any:
        """One boto3 client for the archive's life (boto3 clients are thread-safe once made)."""
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                self._client = boto3.session.Session().client(
                    "s3",
                    config=Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=16),
                )
            return self._client

    async def _call(self, what: str, sha256: str, method: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        def call() -> Any:
            return getattr(self.client(), method)(Bucket=self.bucket, Key=self.key_of(sha256), **kwargs)

        try:
            return await asyncio.to_thread(call)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _MISSING:
                raise RecordingMissing(sha256, self.path_of(sha256)) from None
            raise ArchiveError(self.url, f"could not {what} {self.path_of(sha256)}: {code or exc}") from exc
        except BotoCoreError as exc:
            raise ArchiveError(self.url, f"could not {what} {self.path_of(sha256)}: {exc}") from exc

    async def put(self, data: bytes, sha256: str) -> None:
        await self._call("write", sha256, "put_object", Body=data, ContentType=MEDIA_TYPE)

    async def get(self, sha256: str) -> bytes:
        response = await self._call("read", sha256, "get_object")
        body = response["Body"]
        try:
            data: bytes = await asyncio.to_thread(body.read)
        finally:
            body.close()
        return data

    async def size(self, sha256: str) -> int | None:
        try:
            response = await self._call("read", sha256, "head_object")
        except RecordingMissing:
            return None
        return int(response["ContentLength"])

    async def delete(self, sha256: str) -> bool:
        # S3's DELETE answers 204 whether or not the object was there: ask first.
        if await self.size(sha256) is None:
            return False
        await self._call("delete", sha256, "delete_object")
        return True
