"""The recording archive on S3, against a real S3-compatible server (moto in server mode, over
HTTP on a free port, started here): the archive itself, `ivr serve` archiving a call's audio
into the bucket, and `ivr verify` re-hashing it from there."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from ivr.recordings.archive import open_archive
from ivr.recordings.exceptions import ArchiveError, RecordingMissing
from ivr.recordings.s3 import S3Archive
from ivr.settings import Settings
from ivr.twilio.rest_emulator import TwilioRestEmulator, recording_media
from tests.conftest import ACME_NUMBER, AUTH_TOKEN, CALLER
from tests.live_server import free_port, ivr
from tests.test_recording_fetch import ACCOUNT, archived_sha256, running

pytest_plugins = ["tests.pg_server"]

BUCKET = "consent-audio"
AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto S3 server with an empty bucket; AWS_ENDPOINT_URL points boto3 at it."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in (AWS | {"AWS_ENDPOINT_URL": endpoint}).items():
        monkeypatch.setenv(name, value)
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
    try:
        yield endpoint
    finally:
        server.stop()


def objects(endpoint: str) -> dict[str, bytes]:
    client = boto3.client("s3", endpoint_url=endpoint)
    listed = client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}


async def test_s3_archive_keeps_whole_objects_by_hash(s3: str) -> None:
    archive = open_archive(Settings(recordings_url=f"s3://{BUCKET}/calls/audio"))
    assert isinstance(archive, S3Archive) and archive.url == f"s3://{BUCKET}/calls/audio"
    data = recording_media("RE" + "1" * 32, 1)
    sha256 = hashlib.sha256(data).hexdigest()
    assert await archive.size(sha256) is None
    with pytest.raises(RecordingMissing):
        await archive.get(sha256)
    await archive.put(data, sha256)
    await archive.put(data, sha256)
    key = f"calls/audio/{sha256[:2]}/{sha256[2:4]}/{sha256}.wav"
    assert objects(s3) == {key: data}
    assert archive.path_of(sha256) == f"s3://{BUCKET}/{key}"
    assert await archive.get(sha256) == data and await archive.size(sha256) == len(data)
    assert await archive.delete(sha256) is True and await archive.delete(sha256) is False
    with pytest.raises(ValueError, match="is not a SHA-256"):
        await archive.put(data, "../" + sha256[3:])


async def test_a_missing_bucket_is_an_archive_error_naming_it(s3: str) -> None:
    archive = open_archive(Settings(recordings_url="s3://no-such-bucket"))
    with pytest.raises(ArchiveError, match="no-such-bucket"):
        await archive.put(b"x", hashlib.sha256(b"x").hexdigest())


async def test_a_call_is_archived_into_s3_and_verified_from_there(s3: str, tmp_path: Path) -> None:
    api = TwilioRestEmulator()
    api.add_account(ACCOUNT, AUTH_TOKEN)
    url = f"s3://{BUCKET}/prod"
    with api.serve() as api_url:
        async for service in running(tmp_path, api_url, api, recordings_url=url):
            call = await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
            sha256 = await archived_sha256(service.store, call.call_sid)
            archived = await service.store.archived_recording(call.call_sid)
    assert call.recording_sid is not None and archived is not None
    body = recording_media(call.recording_sid, 31)
    key = f"prod/{sha256[:2]}/{sha256[2:4]}/{sha256}.wav"
    assert sha256 == hashlib.sha256(body).hexdigest()
    assert objects(s3) == {key: body}
    assert archived.location == f"s3://{BUCKET}/{key}"
    assert not (tmp_path / "ivr.db.recordings").exists()  # nothing went to the local default
    env = dict(os.environ, IVR_DATABASE_URL=f"sqlite:///{tmp_path / 'ivr.db'}", IVR_RECORDINGS_URL=url)
    done = await asyncio.to_thread(ivr, env, "verify")
    assert done.returncode == 0, done.stderr
    assert "1 archived recording re-hashed, all match" in done.stdout
    changed = body[:-1] + bytes([body[-1] ^ 0xFF])  # always another byte (the audio may end in \x00)
    boto3.client("s3", endpoint_url=s3).put_object(Bucket=BUCKET, Key=key, Body=changed)
    done = await asyncio.to_thread(ivr, env, "verify")
    assert done.returncode == 1 and "bytes changed" in done.stderr and call.recording_sid in done.stderr
    boto3.client("s3", endpoint_url=s3).delete_object(Bucket=BUCKET, Key=key)
    done = await asyncio.to_thread(ivr, env, "verify")
    assert done.returncode == 1 and "missing from the archive" in done.stderr


# -- several processes on PostgreSQL share an S3 archive ------------------------------------------


async def test_on_postgresql_a_call_is_archived_into_s3_exported_and_verified(
    s3: str, pg_migrated_url: str, tmp_path: Path
) -> None:
    api = TwilioRestEmulator()
    api.add_account(ACCOUNT, AUTH_TOKEN)
    url = f"s3://{BUCKET}"
    with api.serve() as api_url:
        async for service in running(
            tmp_path, api_url, api, recordings_url=url, database_url=pg_migrated_url
        ):
            call = await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
            sha256 = await archived_sha256(service.store, call.call_sid)
            assert await service.store.recordings_to_fetch() == []
    assert call.recording_sid is not None
    assert sha256 == hashlib.sha256(recording_media(call.recording_sid, 31)).hexdigest()
    env = dict(os.environ, IVR_DATABASE_URL=pg_migrated_url, IVR_RECORDINGS_URL=url)
    done = await asyncio.to_thread(ivr, env, "export", "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    [row] = [json.loads(line) for line in done.stdout.splitlines()]
    assert (row["recording_sid"], row["recording_sha256"]) == (call.recording_sid, sha256)
    done = await asyncio.to_thread(ivr, env, "verify")
    assert done.returncode == 0 and "1 archived recording re-hashed, all match" in done.stdout, done.stderr


async def test_postgresql_with_a_local_folder_archive_warns_at_start(
    pg_migrated_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = TwilioRestEmulator()
    api.add_account(ACCOUNT, AUTH_TOKEN)
    with api.serve() as api_url:
        async for _ in running(tmp_path, api_url, api, database_url=pg_migrated_url):
            pass
    [warning] = [r for r in caplog.records if "local folder" in r.getMessage()]
    assert warning.levelname == "WARNING" and "IVR_RECORDINGS_URL=s3://" in warning.getMessage()
