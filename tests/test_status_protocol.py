"""Status callbacks answered in uvicorn's protocol (ivr.twilio.status_protocol): hostile inputs.

Real uvicorn servers on real sockets in this process, with the real app on a real SQLite file:
one with `ivr serve`'s protocol (the fast path), and for comparison one with the header-deadline
protocol alone, where every callback goes through the ASGI handler. The fast path must answer
byte for byte as the ASGI handler does, keep uvicorn's bookkeeping (keep-alive, pipelining in
order, `Connection: close`, graceful shutdown), refuse what it must, and hand to the ASGI handler
what it does not handle (a proxy's headers to apply). Each test checks that the path it means
to test was the one taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import uvicorn
from twilio.request_validator import RequestValidator

import ivr.twilio.status_protocol as status_protocol
from consent_store import StoreUnavailable
from consent_store.message_statuses import count_message_statuses
from ivr.app import ConsentApp, create_app
from ivr.middleware import header_deadline_protocol
from ivr.security import MAX_BODY_BYTES
from ivr.twilio.emulator import new_sid
from ivr.twilio.message_status import MessageStatusCallbacks
from ivr.twilio.status_protocol import StatusCallbackProtocol, status_callback_protocol
from tests.conftest import ACME, ACME_NUMBER, AUTH_TOKEN, CALLER, add_business, make_settings

pytest_plugins = ["tests.pg_server"]

PATH = "/twilio/message-status"
ACCOUNT = "AC" + "0" * 32


@dataclass
class Server:
    port: int
    app: ConsentApp
    db: Path
    server: uvicorn.Server
    asgi_calls: list[str]  # paths the ASGI status handler answered

    def url(self, path: str = PATH) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def kept(self) -> int:
        with sqlite3.connect(self.db) as db:
            return int(db.execute("SELECT count(*) FROM message_statuses").fetchone()[0])


@contextlib.asynccontextmanager
async def serving(
    tmp_path: Path,
    fast: bool,
    public_url: str | None = None,
    access_log: bool = False,
    database_url: str | None = None,
) -> AsyncIterator[Server]:
    db = tmp_path / ("fast.db" if fast else "asgi.db")
    app = create_app(make_settings(database_url or f"sqlite:///{db}", public_url))
    assert isinstance(app, ConsentApp)
    calls: list[str] = []

    class Counted(MessageStatusCallbacks):
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            calls.append(scope["path"])
            await super().__call__(scope, receive, send)

    app.status_callbacks = Counted()
    protocol = status_callback_protocol(1.0) if fast else header_deadline_protocol(1.0)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="error", http=protocol, access_log=access_log
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    await add_business(app.state.runtime.store, ACME, [ACME_NUMBER], ["delivery updates"])
    await app.state.runtime.catalog.refresh()
    try:
        yield Server(server.servers[0].sockets[0].getsockname()[1], app, db, server, calls)
    finally:
        server.should_exit = True
        await task


def callback(status: str = "delivered", **changes: str) -> dict[str, str]:
    sid = new_sid("SM")
    params = {
        "AccountSid": ACCOUNT,
        "ApiVersion": "2010-04-01",
        "From": f"whatsapp:{ACME_NUMBER}",
        "MessageSid": sid,
        "MessageStatus": status,
        "SmsSid": sid,
        "SmsStatus": status,
        "To": f"whatsapp:{CALLER}",
    }
    return params | changes


def post(
    server: Server,
    params: dict[str, str],
    *,
    signed_for: str | None = None,
    extra: str = "",
    content_type: str = "application/x-www-form-urlencoded",
) -> bytes:
    """The bytes of a POST of `params`, signed for `signed_for` (default: the server's URL)."""
    body = urlencode(params)
    signature = RequestValidator(AUTH_TOKEN).compute_signature(signed_for or server.url(), params)
    return (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: {content_type}\r\n"
        f"X-Twilio-Signature: {signature}\r\nContent-Length: {len(body)}\r\n{extra}\r\n{body}"
    ).encode()


async def answer(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """One response: status line, headers (Date left out), body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    line, *fields = head[:-4].split(b"\r\n")
    headers = dict(field.split(b": ", 1) for field in fields)
    assert b"date" in headers  # as uvicorn sends on every response
    del headers[b"date"]
    body = await asyncio.wait_for(reader.readexactly(int(headers.get(b"content-length", b"0"))), 10)
    return line, headers, body


@contextlib.asynccontextmanager
async def connected(server: Server) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def exchange(server: Server, request: bytes) -> tuple[bytes, dict[bytes, bytes], bytes]:
    async with connected(server) as (reader, writer):
        writer.write(request)
        return await answer(reader)


Case = Callable[[Server], bytes]
CASES: dict[str, Case] = {
    "kept": lambda s: post(s, callback()),
    "failed with an error code": lambda s: post(s, callback("undelivered", ErrorCode="63016")),
    "from a number of no business": lambda s: post(s, callback(From="whatsapp:+15559998888")),
    "forged": lambda s: post(s, callback(), signed_for="http://elsewhere.example/twilio/message-status"),
    "unsigned": lambda s: post(s, callback()).replace(b"X-Twilio-Signature", b"X-Other"),
    "not a MessageSid": lambda s: post(s, callback(MessageSid="SM123")),
    "a status not Twilio's": lambda s: post(s, callback("exploded")),
    "an error code not a number": lambda s: post(s, callback("failed", ErrorCode="63016;DROP")),
    "channels apart": lambda s: post(s, callback(To=CALLER)),
    "hostile escapes": lambda s: post(s, callback(To="whatsapp:%00%ff<script>")),
    "not a form": lambda s: post(s, callback(), content_type="application/json"),
    "declared over the limit": lambda s: post(s, callback()).replace(
        b"Content-Length: ", b"Content-Length: 99999999\r\nX-Was: "
    ),
}


async def test_the_fast_path_answers_byte_for_byte_as_the_asgi_handler(tmp_path: Path) -> None:
    async with serving(tmp_path, fast=True) as fast, serving(tmp_path, fast=False) as asgi:
        for name, case in CASES.items():
            ours, theirs = await exchange(fast, case(fast)), await exchange(asgi, case(asgi))
            assert ours == theirs, name
        assert fast.kept() == asgi.kept() == 3
        assert len(asgi.asgi_calls) == len(CASES)
        # Every signed, well-formed request was answered in the protocol; only a body not a form
        # and a declared length over the limit were handed to the ASGI handler.
        assert len(fast.asgi_calls) == 2


async def test_pipelined_requests_are_answered_in_order(tmp_path: Path) -> None:
    async with serving(tmp_path, fast=True) as server, connected(server) as (reader, writer):
        healthz = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode()
        forged = post(server, callback(), signed_for="http://x.example/")
        writer.write(post(server, callback()) + healthz + forged + post(server, callback("read")))
        lines = [(await answer(reader))[0] for _ in range(4)]
        assert lines == [
            b"HTTP/1.1 204 No Content",
            b"HTTP/1.1 200 OK",
            b"HTTP/1.1 403 Forbidden",
            b"HTTP/1.1 204 No Content",
        ]
        assert server.kept() == 2
        assert server.asgi_calls == []


async def test_one_connection_carries_many_callbacks(tmp_path: Path) -> None:
    async with serving(tmp_path, fast=True) as server, connected(server) as (reader, writer):
        for _ in range(40):
            writer.write(post(server, callback()))
            assert (await answer(reader))[0] == b"HTTP/1.1 204 No Content"
        assert server.kept() == 40
        assert server.asgi_calls == []


@pytest.mark.parametrize("version, header", [("1.1", "Connection: close\r\n"), ("1.0", "")])
async def test_a_client_that_asks_to_close_is_answered_then_closed(
    tmp_path: Path, version: str, header: str
) -> None:
    async with serving(tmp_path, fast=True) as server, connected(server) as (reader, writer):
        writer.write(
            post(server, callback(), extra=header).replace(b"HTTP/1.1", f"HTTP/{version}".encode(), 1)
        )
        line, headers, _ = await answer(reader)
        assert line.endswith(b"204 No Content")
        assert headers[b"connection"] == b"close"
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
        assert server.kept() == 1


async def test_a_streamed_body_over_the_limit_gets_413_and_keeps_nothing(tmp_path: Path) -> None:
    """Answered as the ASGI handler answers it; the rest of the body is read and dropped, and the
    connection goes on (an endless body meets the request deadline)."""
    async with serving(tmp_path, fast=True) as server, connected(server) as (reader, writer):
        head = post(server, callback()).split(b"\r\n\r\n")[0].replace(b"Content-Length", b"X-Length")
        writer.write(head + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"a=" + b"b" * 65_534
        for _ in range(MAX_BODY_BYTES // len(chunk) + 2):
            writer.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            await writer.drain()
        line, _, body = await answer(reader)
        assert line == b"HTTP/1.1 413 Request Entity Too Large"
        assert body == f"Request body too large (limit {MAX_BODY_BYTES} bytes).".encode()
        writer.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n0\r\n\r\n" + post(server, callback()))
        assert (await answer(reader))[0] == b"HTTP/1.1 204 No Content"
        assert server.kept() == 1
        assert server.asgi_calls == []


@pytest.mark.parametrize("scheme, expected", [("https", b"204 No Content"), ("http", b"403 Forbidden")])
async def test_behind_a_proxy_its_scheme_is_applied_by_the_asgi_path(
    tmp_path: Path, scheme: str, expected: bytes
) -> None:
    """No public URL set: X-Forwarded-Proto from a trusted proxy changes the URL Twilio signed,
    which uvicorn's proxy-headers middleware applies, so the fast path leaves it to ASGI."""
    async with serving(tmp_path, fast=True) as server:
        signed_for = f"{scheme}://127.0.0.1:{server.port}{PATH}"
        request = post(server, callback(), signed_for=signed_for, extra="X-Forwarded-Proto: https\r\n")
        assert (await exchange(server, request))[0].endswith(expected)
        assert server.asgi_calls == [PATH]


async def test_with_a_public_url_a_proxys_headers_change_nothing_and_stay_fast(tmp_path: Path) -> None:
    public = "https://consent.example.com"
    async with serving(tmp_path, fast=True, public_url=public) as server:
        request = post(server, callback(), signed_for=public + PATH, extra="X-Forwarded-Proto: http\r\n")
        assert (await exchange(server, request))[0].endswith(b"204 No Content")
        assert server.asgi_calls == []
        assert server.kept() == 1


@pytest.mark.parametrize("when", ["at once", "later", "cancelled"])
async def test_a_store_that_cannot_keep_the_status_gets_503(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    async with serving(tmp_path, fast=True) as server:
        store = server.app.state.runtime.store

        def unavailable(writes: object) -> asyncio.Future[None]:
            if when == "at once":
                raise StoreUnavailable("the disk is gone")
            failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if when == "cancelled":  # e.g. the store closing under it
                failed.cancel()
            else:
                failed.set_exception(StoreUnavailable("the disk is gone"))
            return failed

        monkeypatch.setattr(store, "_start_bulk_side_writes", unavailable)
        line, _, body = await exchange(server, post(server, callback()))
        assert line == b"HTTP/1.1 503 Service Unavailable"
        assert body == b"Service unavailable: status not stored."
        assert server.asgi_calls == []


async def test_an_error_in_the_fast_path_gets_500_is_logged_and_the_connection_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    async with serving(tmp_path, fast=True) as server, connected(server) as (reader, writer):
        monkeypatch.setattr(status_protocol, "status_report", broken)
        with caplog.at_level(logging.ERROR, logger="ivr.twilio.status_protocol"):
            writer.write(post(server, callback()))
            line, headers, body = await answer(reader)
        assert (line, body) == (b"HTTP/1.1 500 Internal Server Error", b"Internal Server Error")
        assert headers[b"x-content-type-options"] == b"nosniff"
        assert "RuntimeError: a bug" in caplog.text
        monkeypatch.undo()
        writer.write(post(server, callback()))
        assert (await answer(reader))[0] == b"HTTP/1.1 204 No Content"
        assert server.kept() == 1


async def test_shutdown_waits_for_a_callback_being_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serving(tmp_path, fast=True) as server, connected(server) as (reader, writer):
        store = server.app.state.runtime.store
        keep = store._start_bulk_side_writes

        def slow(writes: Any) -> asyncio.Future[None]:
            async def later() -> None:
                await asyncio.sleep(0.5)
                await keep(writes)

            return asyncio.ensure_future(later())

        monkeypatch.setattr(store, "_start_bulk_side_writes", slow)
        writer.write(post(server, callback()))
        await asyncio.sleep(0.1)
        server.server.should_exit = True  # while the write is under way
        line, headers, _ = await answer(reader)
        assert line == b"HTTP/1.1 204 No Content"
        assert headers[b"connection"] == b"close"
        assert server.kept() == 1


async def test_a_body_that_does_not_come_gets_408(tmp_path: Path) -> None:
    async with serving(tmp_path, fast=True) as server, connected(server) as (reader, writer):
        request = post(server, callback())
        writer.write(request[:-10])  # the head and most of the body, then nothing
        text = await asyncio.wait_for(reader.read(), 5)
        assert text.startswith(b"HTTP/1.1 408 Request Timeout")
        assert server.kept() == 0
        assert server.asgi_calls == []


async def test_with_the_access_log_on_the_fast_path_logs_uvicorns_line(tmp_path: Path) -> None:
    lines: list[str] = []

    class Kept(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            client, _, rest = record.getMessage().partition(" - ")
            assert client.startswith("127.0.0.1:")
            lines.append(rest)

    async with (
        serving(tmp_path, fast=True, access_log=True) as fast,
        serving(tmp_path, fast=False, access_log=True) as asgi,
    ):
        access = logging.getLogger("uvicorn.access")
        kept, level = Kept(), access.level
        access.addHandler(kept)
        access.setLevel(logging.INFO)  # the servers' log level ("error") would drop the lines
        try:
            for server in (fast, asgi):
                assert (await exchange(server, post(server, callback())))[0].endswith(b"204 No Content")
                forged = post(server, callback(), signed_for="http://x.example/")
                assert (await exchange(server, forged))[0].endswith(b"403 Forbidden")
        finally:
            access.removeHandler(kept)
            access.setLevel(level)
        assert (fast.asgi_calls, len(asgi.asgi_calls)) == ([], 2)
        assert (
            lines[:2]
            == lines[2:]
            == [
                '"POST /twilio/message-status HTTP/1.1" 204',
                '"POST /twilio/message-status HTTP/1.1" 403',
            ]
        )


async def test_on_postgresql_the_fast_path_keeps_each_callback_once(tmp_path: Path, pg_url: str) -> None:
    """PostgreSQL has no status writer process: the store's single writer takes the statuses, as
    a future the fast path waits on all the same."""
    async with serving(tmp_path, fast=True, database_url=pg_url) as server:
        again = callback()
        async with connected(server) as (reader, writer):
            writer.write(post(server, again) + post(server, callback("read")) + post(server, again))
            lines = [(await answer(reader))[0] for _ in range(3)]
        assert lines == [b"HTTP/1.1 204 No Content"] * 3
        assert await count_message_statuses(server.app.state.runtime.store) == (2, 2)
        assert server.asgi_calls == []


async def test_a_callback_in_chunks_over_several_writes_is_read_whole(tmp_path: Path) -> None:
    async with serving(tmp_path, fast=True) as server, connected(server) as (reader, writer):
        head, body = post(server, callback()).split(b"\r\n\r\n")
        writer.write(head.replace(b"Content-Length", b"X-Length") + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
        for start in range(0, len(body), 50):
            piece = body[start : start + 50]
            writer.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")
        assert (await answer(reader))[0] == b"HTTP/1.1 204 No Content"
        assert server.kept() == 1
        assert server.asgi_calls == []


async def test_a_client_that_does_not_read_its_answers_is_not_read_either(tmp_path: Path) -> None:
    """uvicorn's cycle waits for a full write buffer to drain before its response is complete;
    the fast path's answers are complete at once, so it stops reading instead: a client that
    pipelines callbacks without reading the answers cannot make the server buffer them without
    bound. The transport's signal (pause_writing, as when its buffer passes the high-water mark)
    is given by hand; everything else is the real server and socket."""
    async with serving(tmp_path, fast=True) as server, connected(server) as (reader, writer):
        writer.write(post(server, callback()))
        assert (await answer(reader))[0] == b"HTTP/1.1 204 No Content"
        (protocol,) = server.server.server_state.connections
        assert isinstance(protocol, StatusCallbackProtocol)
        protocol.pause_writing()  # the client stopped reading: the write buffer is full
        writer.write(post(server, callback()))
        assert (await answer(reader))[0] == b"HTTP/1.1 204 No Content"  # answered, then held
        assert not protocol.transport.is_reading()
        writer.write(post(server, callback("read")))
        with pytest.raises(TimeoutError):  # not read while the client does not catch up
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 0.5)
        protocol.resume_writing()  # the client read: the buffer drained
        assert (await answer(reader))[0] == b"HTTP/1.1 204 No Content"
        assert protocol.transport.is_reading()
        assert server.kept() == 3
        assert server.asgi_calls == []


async def test_a_client_expecting_100_continue_is_answered_by_the_asgi_handler(tmp_path: Path) -> None:
    """uvicorn sends 100 Continue when the app first asks for the body: such a client (curl with a
    body over 1 KB) is left to the ASGI path, and gets the interim answer, then the real one."""
    async with serving(tmp_path, fast=True) as server, connected(server) as (reader, writer):
        head, body = post(server, callback(), extra="Expect: 100-continue\r\n").split(b"\r\n\r\n")
        writer.write(head + b"\r\n\r\n")
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(body)
        assert (await answer(reader))[0] == b"HTTP/1.1 204 No Content"
        assert server.kept() == 1
        assert server.asgi_calls == [PATH]
