"""Recordings are fetched from Twilio (our REST emulator, over real HTTP), hashed, archived and
chained; whatever Twilio does wrong, nothing partial lands in the archive and nothing is lost."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from consent_store import ConsentStore, RecordingStatus
from ivr.app import create_app
from ivr.businesses import add_business
from ivr.recordings.exceptions import FetchError
from ivr.recordings.fetch import RecordingFetcher, fetcher_of
from ivr.recordings.twilio_media import TwilioCredentials, fetch_media
from ivr.settings import Settings
from ivr.twilio.emulator import TwilioEmulator, new_sid
from ivr.twilio.rest_emulator import TwilioRestEmulator, add_recording, recording_media
from tests.conftest import ACME, ACME_NUMBER, AUTH_TOKEN, CALLER

ACCOUNT = "AC" + "5" * 32


@dataclass
class Archiving:
    store: ConsentStore
    twilio: TwilioEmulator
    api: TwilioRestEmulator
    fetcher: RecordingFetcher
    archive_root: Path


def archive_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def api() -> TwilioRestEmulator:
    api = TwilioRestEmulator()
    api.add_account(ACCOUNT, AUTH_TOKEN)
    return api


async def running(
    tmp_path: Path,
    api_url: str,
    api: TwilioRestEmulator,
    token: str = AUTH_TOKEN,
    *,
    recordings_url: str | None = None,
    database_url: str | None = None,
) -> AsyncIterator[Archiving]:
    root = tmp_path / "archive"
    settings = Settings(
        database_url=database_url or f"sqlite:///{tmp_path / 'ivr.db'}",
        twilio_auth_token=token,
        twilio_account_sid=ACCOUNT,
        twilio_api_url=api_url,
        webhook_retry_seconds=0.05,
        recordings_url=recordings_url or root.as_uri(),
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        store = app.state.runtime.store
        if not await store.list_businesses():
            await add_business(store, ACME, [ACME_NUMBER], ["delivery updates"])
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            twilio = TwilioEmulator(client, "http://testserver", token, ACCOUNT)
            twilio.rest = api
            fetcher = fetcher_of(app)
            assert fetcher is not None
            yield Archiving(store, twilio, api, fetcher, root)


@pytest.fixture
async def archiving(tmp_path: Path, api: TwilioRestEmulator) -> AsyncIterator[Archiving]:
    with api.serve() as api_url:
        async for service in running(tmp_path, api_url, api):
            yield service


async def archived_sha256(store: ConsentStore, call_sid: str, seconds: float = 15) -> str:
    for _ in range(int(seconds / 0.05)):
        found = await store.archived_recording(call_sid)
        if found is not None:
            return found.sha256
        await asyncio.sleep(0.05)
    raise AssertionError(f"the recording of {call_sid} was never archived")


def served(call: object) -> bytes:
    sid = call.recording_sid  # type: ignore[attr-defined]
    return recording_media(sid, 31)


async def test_opt_in_recording_is_archived_with_the_sha256_of_the_bytes_served(archiving: Archiving) -> None:
    call = await archiving.twilio.call(ACME_NUMBER, CALLER, ["1"])
    sha256 = await archived_sha256(archiving.store, call.call_sid)
    body = served(call)
    assert sha256 == hashlib.sha256(body).hexdigest()
    [kept] = archive_files(archiving.archive_root)
    assert kept.read_bytes() == body
    assert kept.relative_to(archiving.archive_root).as_posix() == f"{sha256[:2]}/{sha256[2:4]}/{sha256}.wav"
    archived = await archiving.store.archived_recording(call.call_sid)
    assert archived is not None
    assert (
        archived.recording_sid,
        archived.bytes,
        archived.media_type,
        archived.duration,
        archived.found_by,
    ) == (
        call.recording_sid,
        len(body),
        "audio/x-wav",
        31,
        "callback",
    )
    assert archived.location == str(kept)
    assert (await archiving.store.verify()).intact


async def test_credentials_never_go_to_the_media_host_the_api_redirects_to(archiving: Archiving) -> None:
    call = await archiving.twilio.call(ACME_NUMBER, CALLER, ["1"])
    await archived_sha256(archiving.store, call.call_sid)
    assert archiving.api.media_requests and not any(had_auth for _, had_auth in archiving.api.media_requests)
    assert (
        "GET",
        f"/2010-04-01/Accounts/{ACCOUNT}/Recordings/{call.recording_sid}.wav",
    ) in archiving.api.requests


async def test_a_recording_url_naming_another_host_is_never_requested(archiving: Archiving) -> None:
    evil = TwilioRestEmulator()
    with evil.serve() as evil_url:
        call = await archiving.twilio.call(ACME_NUMBER, CALLER, ["1"], recording="none")
        add_recording(archiving.api, ACCOUNT, call.call_sid, sid=call.recording_sid, duration=31)
        assert call.recording_callback is not None and call.recording_sid is not None
        params = {
            "AccountSid": ACCOUNT,
            "CallSid": call.call_sid,
            "RecordingSid": call.recording_sid,
            "RecordingStatus": "completed",
            "RecordingUrl": f"{evil_url}/2010-04-01/Accounts/{ACCOUNT}/Recordings/{call.recording_sid}",
            "RecordingDuration": "31",
        }
        assert (await archiving.twilio.post(call.recording_callback, params)).status_code == 204
        sha256 = await archived_sha256(archiving.store, call.call_sid)
    assert sha256 == hashlib.sha256(served(call)).hexdigest()
    assert evil.requests == []


@pytest.mark.parametrize("fault", ["short", "truncated", "500", "401"])
async def test_a_failed_fetch_never_lands_in_the_archive_and_is_retried(
    archiving: Archiving, fault: str
) -> None:
    archiving.api.media_faults += [fault, fault]
    call = await archiving.twilio.call(ACME_NUMBER, CALLER, ["1"])
    sha256 = await archived_sha256(archiving.store, call.call_sid)
    assert sha256 == hashlib.sha256(served(call)).hexdigest()
    assert archiving.api.media_faults == []  # both faults were met before the whole audio came
    assert [p.read_bytes() for p in archive_files(archiving.archive_root)] == [served(call)]
    assert await archiving.store.recordings_to_fetch() == []


async def test_wrong_credentials_are_reported_and_nothing_lands(
    tmp_path: Path, api: TwilioRestEmulator
) -> None:
    api.accounts[ACCOUNT].auth_token = "the token was rotated at Twilio"
    with api.serve() as api_url:
        async for service in running(tmp_path, api_url, api):
            call = await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
            for _ in range(200):
                if service.fetcher.failures():
                    break
                await asyncio.sleep(0.05)
            [failure] = service.fetcher.failures()
            assert (failure.call_sid, failure.recording_sid, failure.status) == (
                call.call_sid,
                call.recording_sid,
                401,
            )
            assert "refused the credentials" in failure.last_error and "20003" in failure.last_error
            assert failure.since.endswith("Z") and failure.attempts >= 1
            assert archive_files(service.archive_root) == []
            assert await service.store.archived_recording(call.call_sid) is None
            [pending] = await service.store.recordings_to_fetch()
            assert pending.recording_sid == call.recording_sid


async def test_with_the_api_down_webhooks_answer_and_the_audio_is_archived_once_it_is_back(
    archiving: Archiving,
) -> None:
    archiving.api.media_faults += ["500"] * 1000
    calls = [await archiving.twilio.call(ACME_NUMBER, CALLER, ["1"], recording="none") for _ in range(3)]
    for call in calls:  # each callback is answered at once, the fetch left to the background
        assert (await archiving.twilio.send_recording(call, ACME_NUMBER, CALLER)).status_code == 204
    for _ in range(200):
        if len(archiving.fetcher.failures()) == 3:
            break
        await asyncio.sleep(0.05)
    assert {f.recording_sid for f in archiving.fetcher.failures()} == {c.recording_sid for c in calls}
    assert archive_files(archiving.archive_root) == []
    archiving.api.media_faults.clear()
    for call in calls:
        assert (
            await archived_sha256(archiving.store, call.call_sid) == hashlib.sha256(served(call)).hexdigest()
        )
    # The archive record is in the store before the fetch task resumes and forgets its failure:
    # the list empties a moment later, not necessarily by the time the record can be read.
    for _ in range(200):
        if not archiving.fetcher.failures():
            break
        await asyncio.sleep(0.01)
    assert archiving.fetcher.failures() == []


async def test_a_recording_stored_before_a_crash_is_archived_after_the_restart(
    tmp_path: Path, api: TwilioRestEmulator
) -> None:
    with api.serve() as api_url:
        async for service in running(tmp_path, api_url, api):
            call_sid, recording_sid = new_sid("CA"), new_sid("RE")
            add_recording(api, ACCOUNT, call_sid, sid=recording_sid, duration=3)
            service.fetcher.wake = lambda: None  # type: ignore[method-assign]  # the process dies before it fetches
            await service.store.attach_recording(
                RecordingStatus(call_sid, recording_sid, "completed", None, 3)
            )
        async for service in running(tmp_path, api_url, api):
            sha256 = await archived_sha256(service.store, call_sid)
    assert sha256 == hashlib.sha256(recording_media(recording_sid, 3)).hexdigest()


async def test_a_hanging_api_is_a_timeout_and_nothing_is_kept(api: TwilioRestEmulator) -> None:
    sid = new_sid("RE")
    add_recording(api, ACCOUNT, new_sid("CA"), sid=sid, duration=1)
    api.media_faults.append("timeout")
    with api.serve() as api_url:
        credentials = TwilioCredentials(api_url, ACCOUNT, ACCOUNT, AUTH_TOKEN)
        async with httpx.AsyncClient() as client:
            with pytest.raises(FetchError, match="timed out"):
                await fetch_media(client, credentials, sid, None, httpx.Timeout(0.5))
            media = await fetch_media(client, credentials, sid, None)
    assert media.data == recording_media(sid, 1)


async def test_a_subaccount_recording_is_fetched_with_that_subaccount_token(api: TwilioRestEmulator) -> None:
    sub = api.add_account(auth_token="sub-token")
    sid = new_sid("RE")
    add_recording(api, sub.sid, new_sid("CA"), sid=sid, duration=1)
    url = f"https://api.twilio.com/2010-04-01/Accounts/{sub.sid}/Recordings/{sid}"
    with api.serve() as api_url:
        credentials = TwilioCredentials(api_url, ACCOUNT, ACCOUNT, AUTH_TOKEN, ((sub.sid, "sub-token"),))
        async with httpx.AsyncClient() as client:
            assert (await fetch_media(client, credentials, sid, url)).data == recording_media(sid, 1)
            # The main account's recording path with a subaccount's SID in a forged URL: still main.
            with pytest.raises(FetchError, match="HTTP 404"):
                await fetch_media(client, credentials, sid, url.replace(sid, new_sid("RE")))


def test_a_real_server_answers_every_callback_while_twilio_fails_and_archives_once_it_is_back(
    tmp_path: Path, api: TwilioRestEmulator
) -> None:
    import json
    import os
    import time

    from tests.live_server import ivr, server, wait_until_healthy

    env = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "TWILIO_", "AWS_"))} | {
        "IVR_DATABASE_URL": f"sqlite:///{tmp_path / 'ivr.db'}",
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "IVR_WEBHOOK_RETRY_SECONDS": "0.1",
    }
    assert (
        ivr(env, "business", "add", "--name", ACME, "--number", ACME_NUMBER, "--message-type", "x").returncode
        == 0
    )
    api.media_faults += ["500"] * 100_000
    log = tmp_path / "serve.log"
    with api.serve() as api_url, server(env | {"IVR_TWILIO_API_URL": api_url}, log) as (process, base):
        wait_until_healthy(base, process, log)

        async def calls() -> list[str]:
            async with httpx.AsyncClient(timeout=10) as client:
                twilio = TwilioEmulator(client, base, AUTH_TOKEN, ACCOUNT)
                twilio.rest = api
                placed = []
                for n in range(3):
                    call = await twilio.call(ACME_NUMBER, f"+1415555{n:04d}", ["1"], recording="none")
                    assert (await twilio.send_recording(call, ACME_NUMBER, CALLER)).status_code == 204
                    placed.append(call.call_sid)
                return placed

        placed = asyncio.run(calls())
        deadline = time.monotonic() + 30
        while "could not archive" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "could not archive" in log.read_text() and "HTTP 500" in log.read_text()
        assert not (tmp_path / "ivr.db.recordings").exists()
        api.media_faults.clear()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done = ivr(env, "export", "--format", "jsonl")
            rows = [json.loads(line) for line in done.stdout.splitlines()]
            if len(rows) == 3 and all(r["recording_sha256"] for r in rows):
                break
            time.sleep(0.2)
        assert {r["call_sid"] for r in rows} == set(placed)
        for row in rows:
            assert (
                row["recording_sha256"]
                == hashlib.sha256(recording_media(row["recording_sid"], 31)).hexdigest()
            )
    verified = ivr(env, "verify")
    assert verified.returncode == 0 and "3 archived recordings re-hashed, all match" in verified.stdout
