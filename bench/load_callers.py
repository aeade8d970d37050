"""The per-call clients of bench/load_client.py: one whole signed call, its requests and its checks.

A call is what Twilio does for one caller, without the caller's listening time:

1. `POST /twilio/voice` (signed): expects `<Response>` with `<Start><Recording>` and a `<Gather>`
   whose action is the decision webhook (step `subscribed` for a phone that is opted in, else
   `consent`);
2. the Gather action with `Digits` (the decision, committed before the reply): expects a
   `<Say>` with "Your choice has been recorded" and a `<Hangup>`, no `<Gather>`;
3. the recording status callback (`completed`): expects 2xx;
4. the call status callback (`completed`): expects 2xx.

Two clients: `LeanCaller` (`lean`, the default; HTTP/1.1 keep-alive over asyncio streams, requests
signed with twilio's RequestValidator, TwiML parsed with ElementTree: about 0.2 ms of client CPU a
call) and `EmulatorCaller` (`emulator`: `ivr.twilio.emulator.TwilioEmulator` over
`httpx.AsyncClient`, exactly what the tests use, several times more client CPU). With `check` off
(the baseline) the replies are not checked: the client posts the same four requests, following the
constant document's Gather and callback URLs. A caller only reports to the driver's `Recorder`
(latencies, errors, calls done); it never prints and never chooses who calls.
"""

from __future__ import annotations

import asyncio
import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

from twilio.request_validator import RequestValidator

if TYPE_CHECKING:
    # Types only: bench.load_client runs as __main__, and importing it again would load it twice.
    from bench.load_client import Config, Recorder

RECORDED = "Your choice has been recorded"
REQUEST_TIMEOUT = 15.0  # Twilio gives up on a webhook after 15 s


class CheckFailed(Exception):
    """The service answered something a caller must not get (wrong status or TwiML)."""


# -- what Twilio posts -------------------------------------------------------------


def call_sid(n: int, prefix: str = "CA") -> str:
    return f"{prefix}{os.getpid():08x}{n:024x}"


def call_params(
    account_sid: str, sid: str, to: str, phone: str, status: str = "in-progress"
) -> dict[str, str]:
    """The parameters Twilio posts to the voice webhook and the Gather action (as the emulator)."""
    return {
        "AccountSid": account_sid,
        "ApiVersion": "2010-04-01",
        "CallSid": sid,
        "CallStatus": status,
        "Direction": "inbound",
        "From": phone,
        "To": to,
        "Caller": phone,
        "Called": to,
    }


def recording_params(account_sid: str, sid: str, recording_sid: str) -> dict[str, str]:
    return {
        "AccountSid": account_sid,
        "CallSid": sid,
        "RecordingSid": recording_sid,
        "RecordingStatus": "completed",
        "RecordingSource": "StartCallRecordingTwiML",
        "RecordingChannels": "2",
        "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{account_sid}/Recordings/{recording_sid}",
        "RecordingDuration": "31",
    }


# -- checking replies ----------------------------------------------------------------


def parse_twiml(status: int, body: bytes) -> ET.Element:
    if status != 200:
        raise CheckFailed(f"HTTP {status}: {body[:120]!r}")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise CheckFailed(f"invalid XML: {exc}") from exc
    if root.tag != "Response":
        raise CheckFailed(f"<{root.tag}>, not <Response>")
    return root


def voice_urls(root: ET.Element, base: str, expected_step: str | None) -> tuple[str, str]:
    """(Gather action URL, recording callback URL) of a first reply; checks the step if given."""
    recording = root.find("Start/Recording")
    gather = root.find("Gather")
    if recording is None or gather is None:
        raise CheckFailed("no <Start><Recording> or no <Gather>")
    callback, action = recording.get("recordingStatusCallback"), gather.get("action")
    if not callback or not action:
        raise CheckFailed("no recordingStatusCallback or no Gather action")
    if expected_step is not None:
        step = parse_qs(urlsplit(action).query).get("step", [""])[0]
        if step != expected_step:
            raise CheckFailed(
                f"Gather step {step!r}, expected {expected_step!r} from this phone's last recorded"
                " decision (a stale standing read?)"
            )
    return urljoin(base, action), urljoin(base, callback)


def check_decision(root: ET.Element) -> None:
    if root.find("Gather") is not None or root.find("Hangup") is None:
        raise CheckFailed("the decision reply must say the confirmation and hang up")
    if not any(RECORDED in (say.text or "") for say in root.iter("Say")):
        raise CheckFailed(f"no {RECORDED!r} in the decision reply")


def check_2xx(status: int, body: bytes) -> None:
    if not 200 <= status < 300:
        raise CheckFailed(f"HTTP {status}: {body[:120]!r}")


# -- the lean HTTP client ------------------------------------------------------------


class Connection:
    """One HTTP/1.1 keep-alive connection; responses with Content-Length (or none: 204/304)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host
        self.closed = False

    async def post(self, target: str, body: bytes, signature: str) -> tuple[int, bytes]:
        self.writer.write(
            (
                f"POST {target} HTTP/1.1\r\nHost: {self.host}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\nX-Twilio-Signature: {signature}\r\n\r\n"
            ).encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length, chunked = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and value.strip().lower() == "close":
                self.closed = True
        if chunked:
            return status, await self._chunked()
        return status, await self.reader.readexactly(length) if length else b""

    async def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    def close(self) -> None:
        self.closed = True
        self.writer.close()


# uvicorn closes a keep-alive connection idle for 5 s; a client must not reuse one that old
# (like any HTTP client's pool, e.g. httpx's keepalive_expiry).
IDLE_SECONDS = 4.0


class Pool:
    """Idle keep-alive connections to one host, opened on demand, dropped when idle too long."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.netloc = parts.netloc
        self._idle: list[tuple[Connection, float]] = []
        self.opened = 0

    async def acquire(self) -> Connection:
        now = time.monotonic()
        while self._idle:
            connection, since = self._idle.pop()
            if now - since < IDLE_SECONDS and not connection.reader.at_eof():
                return connection
            connection.close()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self.opened += 1
        return Connection(reader, writer, self.netloc)

    def release(self, connection: Connection) -> None:
        if not connection.closed:
            self._idle.append((connection, time.monotonic()))

    def close(self) -> None:
        for connection, _ in self._idle:
            connection.close()
        self._idle.clear()


# A whole call: (call number, phone, opted in, key) -> whether the decision was recorded.
CallFn = Callable[[int, str, bool, str], Awaitable[bool]]


class LeanCaller:
    def __init__(self, config: Config, recorder: Recorder) -> None:
        self.config = config
        self.recorder = recorder
        self.pool = Pool(config.base_url)
        self.validator = RequestValidator(config.token)
        self.account_sid = "AC" + "0" * 32
        self.base = config.base_url.rstrip("/") + "/"

    async def post(self, webhook: str, url: str, params: Mapping[str, str]) -> tuple[int, bytes]:
        signature = self.validator.compute_signature(url, dict(params))
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        body = urlencode(params).encode()
        connection = await self.pool.acquire()
        started = time.perf_counter()
        try:
            status, reply = await asyncio.wait_for(connection.post(target, body, signature), REQUEST_TIMEOUT)
        except BaseException:
            connection.close()
            raise
        self.recorder.request(webhook, time.perf_counter() - started)
        self.pool.release(connection)
        return status, reply

    async def call(self, n: int, phone: str, opted_in: bool, key: str) -> bool:
        check, to = self.config.check, self.config.to
        sid = call_sid(n)
        params = call_params(self.account_sid, sid, to, phone)
        webhook = "voice"
        recorded, ok = False, True
        try:
            status, body = await self.post("voice", self.base + "twilio/voice", params)
            if check:
                action, callback = voice_urls(
                    parse_twiml(status, body), self.base, "subscribed" if opted_in else "consent"
                )
            else:
                action, callback = voice_urls(ET.fromstring(body), self.base, None)
            webhook = "decision"
            try:
                status, body = await self.post("decision", action, params | {"Digits": key})
                if check:
                    check_decision(parse_twiml(status, body))
                recorded = True
            except CheckFailed as exc:
                ok = False
                self.recorder.error(webhook, str(exc))
            webhook = "recording"
            status, body = await self.post(
                "recording", callback, recording_params(self.account_sid, sid, "RE" + sid[2:])
            )
            if check:
                check_2xx(status, body)
            webhook = "status"
            status_params = call_params(self.account_sid, sid, to, phone, "completed") | {
                "CallDuration": "31"
            }
            status, body = await self.post("status", self.base + "twilio/status", status_params)
            if check:
                check_2xx(status, body)
        except CheckFailed as exc:
            ok = False
            self.recorder.error(webhook, str(exc))
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, ET.ParseError) as exc:
            ok = False
            self.recorder.error(webhook, f"{type(exc).__name__}: {exc}")
        self.recorder.call_done(ok)
        return recorded

    async def close(self) -> None:
        self.pool.close()


class EmulatorCaller:
    """The project's TwilioEmulator over httpx: follows the TwiML itself, checks what was said."""

    def __init__(self, config: Config, recorder: Recorder) -> None:
        import httpx

        from ivr.twilio.emulator import TwilioEmulator

        self.config = config
        self.recorder = recorder
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=config.max_in_flight)
        self.client = httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT)
        recorder_ = recorder

        class TimedEmulator(TwilioEmulator):
            async def post(
                self,
                url: str,
                params: Mapping[str, str],
                *,
                signed: bool = True,
                signature: str | None = None,
            ) -> Any:
                url = self.url(url) if url.startswith("/") else url
                path = urlsplit(url).path
                webhook = {
                    "/twilio/voice": "voice",
                    "/twilio/recording": "recording",
                    "/twilio/status": "status",
                }.get(path, "decision")
                signature = signature or self.sign(url, params)
                started = time.perf_counter()
                response = await super().post(url, params, signed=signed, signature=signature)
                recorder_.request(webhook, time.perf_counter() - started)
                if not 200 <= response.status_code < 300:
                    raise CheckFailed(f"{webhook}: HTTP {response.status_code}")
                return response

        self.emulator = TimedEmulator(self.client, config.base_url, config.token, "AC" + "0" * 32)

    async def call(self, n: int, phone: str, opted_in: bool, key: str) -> bool:
        import httpx

        from ivr.exceptions import EmulatorError

        sid = call_sid(n)
        try:
            if not self.config.check:
                # The constant document cannot be followed: post the same four requests.
                params = self.emulator.call_params(sid, self.config.to, phone)
                voice = await self.emulator.post("/twilio/voice", params)
                action, callback = voice_urls(ET.fromstring(voice.text), self.config.base_url + "/", None)
                await self.emulator.post(action, params | {"Digits": key})
                await self.emulator.post(callback, recording_params("AC" + "0" * 32, sid, "RE" + sid[2:]))
                await self.emulator.post("/twilio/status", params | {"CallStatus": "completed"})
                self.recorder.call_done(True)
                return True
            result = await self.emulator.call(self.config.to, phone, [key], call_sid=sid)
            if result.ended_by != "hangup" or RECORDED not in result.transcript:
                raise CheckFailed(f"the call ended by {result.ended_by} without {RECORDED!r}")
        except (CheckFailed, EmulatorError, httpx.HTTPError) as exc:
            self.recorder.error("call", f"{type(exc).__name__}: {exc}")
            self.recorder.call_done(False)
            return False
        self.recorder.call_done(True)
        return True

    async def close(self) -> None:
        await self.client.aclose()
