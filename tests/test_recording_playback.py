"""The receipt plays the call from the archive: byte ranges (206, exact bytes, 416 out of bounds),
signed-in users of the call's business only, the bytes hashed against the chain on every request
(a changed file is never served); `ivr recordings get` writes exactly the archived bytes."""

from __future__ import annotations

import asyncio
import hashlib
import html
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from consent_store.events import ArchivedRecording
from ivr.recordings.playback import byte_range
from ivr.twilio.emulator import CallResult
from ivr.twilio.rest_emulator import recording_media
from tests.cli_runner import ivr_with_env as ivr  # in-process; tests/live_server.py's ivr as was
from tests.conftest import ACME_NUMBER, CALLER
from tests.live_server import SITE_PASSWORD, server, wait_until_healthy
from tests.test_manage_http import PASSWORD, sign_in
from tests.test_recording_sync import OTHER, Env, Running, emulated, running
from tests.user_hashes import quick_hash


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with emulated(tmp_path) as found:
        yield found


async def archived(service: Running, call: CallResult) -> ArchivedRecording:
    for _ in range(300):
        found = await service.store.archived_recording(call.call_sid)
        if found is not None:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("never archived")


class Played:
    def __init__(self, service: Running, call: CallResult, recording: ArchivedRecording, body: bytes) -> None:
        self.service, self.call, self.recording, self.body = service, call, recording, body

    async def get(self, headers: dict[str, str] | None = None, **params: str) -> httpx.Response:
        query = {"call_sid": self.call.call_sid} | params
        return await self.service.client.get("/audit/recording", params=query, headers=headers or {})


@pytest.fixture
async def played(env: Env) -> AsyncIterator[Played]:
    async for service in running(env):
        await service.store.add_user("aldo", "auditor", quick_hash(PASSWORD), "test")
        await service.store.add_user("olga", "auditor", quick_hash(PASSWORD), "test", businesses=(OTHER,))
        call = await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
        recording = await archived(service, call)
        await sign_in(service.client, "aldo")
        yield Played(service, call, recording, recording_media(call.recording_sid or "", 31))


async def test_the_receipt_plays_the_recording_and_says_it_matches_the_chain(played: Played) -> None:
    page = await played.service.client.get("/audit/receipt", params={"call_sid": played.call.call_sid})
    text = html.unescape(page.text)
    source = f"/audit/recording?call_sid={played.call.call_sid}"
    assert f'<audio id="recording" controls preload="none" src="{source}"' in text
    assert "match the SHA-256 chained when they were archived" in text and played.recording.sha256 in text
    assert f"/audit/recording?call_sid={played.call.call_sid}&download=1" in text


async def test_the_whole_file_is_the_archived_bytes_with_its_hash_and_download_name(played: Played) -> None:
    whole = await played.get()
    assert whole.status_code == 200 and whole.content == played.body
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["content-type"] == "audio/x-wav"
    assert whole.headers["x-recording-sha256"] == hashlib.sha256(played.body).hexdigest()
    assert whole.headers["content-disposition"].startswith("inline")
    download = await played.get(download="1")
    assert (
        download.headers["content-disposition"] == f'attachment; filename="{played.call.recording_sid}.wav"'
    )


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [("bytes=0-99", 0, 99), ("bytes=1000-", 1000, None), ("bytes=-10", -10, None), ("bytes=44-44", 44, 44)],
)
async def test_a_range_request_gets_206_and_exactly_those_bytes(
    played: Played, header: str, first: int, last: int | None
) -> None:
    size = len(played.body)
    response = await played.get({"Range": header})
    expected = played.body[first:] if last is None else played.body[first : last + 1]
    start = first % size
    assert response.status_code == 206 and response.content == expected
    assert response.headers["content-range"] == f"bytes {start}-{start + len(expected) - 1}/{size}"
    assert response.headers["content-length"] == str(len(expected))


async def test_a_range_past_the_end_is_clamped_and_one_beyond_it_is_416(played: Played) -> None:
    size = len(played.body)
    clamped = await played.get({"Range": f"bytes={size - 5}-{size + 1000}"})
    assert clamped.status_code == 206 and clamped.content == played.body[-5:]
    for header in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"):
        beyond = await played.get({"Range": header})
        assert beyond.status_code == 416 and beyond.content == b""
        assert beyond.headers["content-range"] == f"bytes */{size}"


@pytest.mark.parametrize(
    "header",
    [
        "bytes=abc",
        "items=0-1",
        "bytes=5-1",
        "bytes=0-1,5-6",
        "bytes=-",
        "bytes=0-" + "9" * 40,
        "bytes = 0-1",
        "",
    ],
)
async def test_a_malformed_range_is_ignored_and_the_whole_file_served(played: Played, header: str) -> None:
    response = await played.get({"Range": header})
    assert response.status_code == 200 and response.content == played.body


async def test_if_range_with_another_version_gets_the_whole_file(played: Played) -> None:
    response = await played.get({"Range": "bytes=0-9", "If-Range": '"' + "0" * 64 + '"'})
    assert response.status_code == 200 and response.content == played.body
    same = await played.get({"Range": "bytes=0-9", "If-Range": f'"{played.recording.sha256}"'})
    assert same.status_code == 206 and same.content == played.body[:10]


async def test_signed_out_users_get_no_bytes(played: Played) -> None:
    await played.service.client.post("/logout")
    played.service.client.cookies.clear()
    response = await played.get({"Range": "bytes=0-99"})
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    assert played.body[:100] not in response.content


async def test_another_business_answers_exactly_like_a_call_that_does_not_exist(played: Played) -> None:
    await sign_in(played.service.client, "olga")
    theirs = await played.get()
    unknown = await played.service.client.get("/audit/recording", params={"call_sid": "CA" + "0" * 32})
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.text.replace(played.call.call_sid, "X") == unknown.text.replace("CA" + "0" * 32, "X")
    receipt = await played.service.client.get("/audit/receipt", params={"call_sid": played.call.call_sid})
    assert receipt.status_code == 404 and played.recording.sha256 not in receipt.text


@pytest.mark.parametrize(
    "call_sid",
    ["../../etc/passwd", "CA123", "CA" + "A" * 32, "CA" + "0" * 32 + "/../x", "", "CA%2e%2e"],
)
async def test_bad_call_sids_are_400_and_touch_no_file(played: Played, call_sid: str) -> None:
    response = await played.service.client.get("/audit/recording", params={"call_sid": call_sid})
    assert response.status_code == 400 and played.body[:100] not in response.content


async def test_a_changed_file_is_never_served_and_the_receipt_says_so(played: Played) -> None:
    path = Path(played.recording.location)
    path.write_bytes(played.body[:-1] + bytes([played.body[-1] ^ 1]))
    response = await played.get({"Range": "bytes=0-99"})
    assert response.status_code == 409 and b"does not match" in response.content
    page = await played.service.client.get("/audit/receipt", params={"call_sid": played.call.call_sid})
    assert "do NOT match" in page.text and "<audio" not in page.text
    path.unlink()
    gone = await played.service.client.get("/audit/receipt", params={"call_sid": played.call.call_sid})
    assert "missing from the archive" in gone.text


def test_byte_range_parser_edges() -> None:
    assert byte_range(None, 10) is None
    assert byte_range("bytes=0-0", 10) == (0, 0)
    assert byte_range("bytes=-20", 10) == (0, 9)
    assert byte_range("bytes=9-", 10) == (9, 9)
    assert byte_range("bytes=10-", 10) == "unsatisfiable"
    assert byte_range("bytes=0-1", 0) == "unsatisfiable"


async def test_ivr_recordings_get_writes_exactly_the_archived_bytes(env: Env, tmp_path: Path) -> None:
    async for service in running(env):
        call = await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
        recording = await archived(service, call)
    out = tmp_path / "out.wav"
    result = ivr(env.cli_env(), "recordings", "get", "--call-sid", call.call_sid, "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == recording_media(call.recording_sid or "", 31)
    assert out.stat().st_mode & 0o777 == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    # A changed archive file is refused and nothing is written.
    Path(recording.location).write_bytes(b"RIFF" + b"\0" * 100)
    again = tmp_path / "again.wav"
    refused = ivr(env.cli_env(), "recordings", "get", "--call-sid", call.call_sid, "-o", str(again))
    assert refused.returncode == 1 and "does not match the chain" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not again.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--call-sid", "../../etc/passwd", "-o", "x.wav"], "not a CallSid"),
        (["--call-sid", "CA" + "1" * 32, "-o", "x.wav"], "no archived recording"),
        (["--call-sid", "CA" + "1" * 32, "-o", "."], "is a folder"),
        (["--call-sid", "CA" + "1" * 32, "-o", "no/such/folder/x.wav"], "there is no folder"),
    ],
)
async def test_ivr_recordings_get_refuses_bad_input_in_one_line(
    env: Env,
    args: list[str],
    message: str,
) -> None:
    async for _service in running(env):
        pass
    result = ivr(env.cli_env(), "recordings", "get", *args)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_chromium_plays_the_receipts_recording_through_range_requests(
    browser: Any,  # noqa: ANN401
    tmp_path: Path,
) -> None:
    """A real `ivr serve` and Debian's headless Chromium: the <audio> element loads the archived
    WAV through byte-range requests (206) and knows its length; a signed-out browser gets none."""
    with emulated(tmp_path) as env, ThreadPoolExecutor(1) as thread:

        async def prepare() -> CallResult:
            async for service in running(env):
                call = await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
                await archived(service, call)
            return call

        call = thread.submit(asyncio.run, prepare()).result()
        serve_env = env.cli_env() | {"IVR_RECORDINGS_SYNC_SECONDS": "0"}
        log = tmp_path / "serve.log"
        with server(serve_env, log) as (process, base):
            wait_until_healthy(base, process, log)
            added = ivr(serve_env, "user", "add", "aldo", "--role", "auditor", stdin=SITE_PASSWORD + "\n")
            assert added.returncode == 0, added.stderr
            context = browser.new_context()
            try:
                page = context.new_page()
                media: list[tuple[int, str | None, str | None]] = []

                def seen(response: Any) -> None:  # noqa: ANN401
                    if "/audit/recording" in response.url:
                        sent, got = (
                            response.request.headers.get("range"),
                            response.headers.get("content-range"),
                        )
                        media.append((response.status, sent, got))

                page.on("response", seen)
                page.goto(f"{base}/login")
                page.fill("#name", "aldo")
                page.fill("#password", SITE_PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url(lambda url: "/login" not in url)
                page.goto(f"{base}/audit/receipt?call_sid={call.call_sid}")
                duration = page.evaluate(
                    """() => new Promise((resolve, reject) => {
                        const audio = document.querySelector('#recording');
                        audio.addEventListener('loadedmetadata', () => resolve(audio.duration));
                        audio.addEventListener('error', () => reject(new Error('error ' + audio.error.code)));
                        audio.preload = 'auto';
                        audio.load();
                    })"""
                )
                assert abs(duration - 31) < 0.5
                assert any(status == 206 and sent and got for status, sent, got in media), media
                signed_out = browser.new_context()
                try:
                    response = signed_out.request.get(
                        f"{base}/audit/recording?call_sid={call.call_sid}",
                        headers={"Range": "bytes=0-99"},
                        max_redirects=0,
                    )
                    assert response.status == 303 and response.body() == b""
                finally:
                    signed_out.close()
            finally:
                context.close()
