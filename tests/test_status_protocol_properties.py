"""Property test: for any status callback an outsider can send, the fast path answers byte for
byte as the ASGI handler does, and keeps exactly what it keeps.

Two real uvicorn servers on real sockets (a thread of their own, one event loop), each with the
real app on its own SQLite file: one with `ivr serve`'s protocol (status callbacks answered in
the protocol), one with the header-deadline protocol alone (every callback through the ASGI
handler). Hypothesis draws hostile callbacks: fields replaced by any text (escapes, `&`, `=`,
`+`, control characters, non-ASCII), fields missing, extra fields, duplicated fields, bodies
that are not a form, signatures valid, forged or missing, content types of every kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from ivr.app import ConsentApp, create_app
from ivr.middleware import header_deadline_protocol
from ivr.twilio.message_status import MessageStatusCallbacks
from ivr.twilio.status_protocol import status_callback_protocol
from tests.conftest import ACME, ACME_NUMBER, AUTH_TOKEN, CALLER, add_business, make_settings

PATH = "/twilio/message-status"


class Servers:
    """Both servers, on a loop in a thread of their own; how many callbacks each handed to ASGI."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.loop = asyncio.new_event_loop()
        self.ports: dict[bool, int] = {}
        self.asgi_calls = {True: 0, False: 0}
        self._servers: list[uvicorn.Server] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(60), "the servers did not start"

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(self._serve())
        finally:
            self.loop.close()

    async def _serve(self) -> None:
        tasks = []
        for fast in (True, False):
            app = create_app(make_settings(f"sqlite:///{self.db(fast)}"))
            assert isinstance(app, ConsentApp)
            app.status_callbacks = self._counted(fast)
            protocol = status_callback_protocol(5.0) if fast else header_deadline_protocol(5.0)
            config = uvicorn.Config(
                app, host="127.0.0.1", port=0, log_level="critical", http=protocol, access_log=False
            )
            server = uvicorn.Server(config)
            self._servers.append(server)
            tasks.append(asyncio.create_task(server.serve()))
            while not server.started:
                await asyncio.sleep(0.01)
            with_app: Any = app
            await add_business(with_app.state.runtime.store, ACME, [ACME_NUMBER], ["delivery updates"])
            await with_app.state.runtime.catalog.refresh()
            self.ports[fast] = server.servers[0].sockets[0].getsockname()[1]
        self._ready.set()
        await asyncio.gather(*tasks)

    def _counted(self, fast: bool) -> MessageStatusCallbacks:
        servers = self

        class Counted(MessageStatusCallbacks):
            async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
                servers.asgi_calls[fast] += 1
                await super().__call__(scope, receive, send)

        return Counted()

    def stop(self) -> None:
        for server in self._servers:
            server.should_exit = True
        self._thread.join(30)

    def db(self, fast: bool) -> Path:
        return self.folder / ("fast.db" if fast else "asgi.db")

    def kept(self, fast: bool) -> list[tuple[Any, ...]]:
        """Every status kept, as stored (but the time it arrived)."""
        with contextlib.closing(sqlite3.connect(self.db(fast))) as db:
            return db.execute(
                "SELECT message_sid, status, error_code, to_number, from_number, channel, account_sid,"
                " business FROM message_statuses ORDER BY message_sid, status"
            ).fetchall()

    def url(self, fast: bool) -> str:
        return f"http://127.0.0.1:{self.ports[fast]}{PATH}"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    running = Servers(tmp_path_factory.mktemp("status-protocol"))
    running.start()
    yield running
    running.stop()


def exchange(port: int, request: bytes) -> tuple[bytes, list[bytes], bytes]:
    """Send one request on a new connection; the answer's status line, headers (Date left out,
    in order) and body, read until the server closes or the body's length is in."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            assert chunk, f"closed before an answer: {data!r}"
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        line, *headers = head.split(b"\r\n")
        length = next((int(h.split(b": ")[1]) for h in headers if h.startswith(b"content-length: ")), 0)
        while len(body) < length:
            chunk = conn.recv(65536)
            assert chunk, "closed before the whole body"
            body += chunk
    return line, [h for h in headers if not h.startswith(b"date: ")], body


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
ESCAPED = st.one_of(TEXT, st.sampled_from(["%", "%2", "%zz", "%00", "+", "&", "=", "%FF%FE", "whatsapp%3A"]))
FIELDS = ("AccountSid", "From", "To", "MessageSid", "MessageStatus", "ErrorCode", "SmsSid")


@st.composite
def callbacks(draw: st.DrawFn) -> tuple[list[tuple[str, str]], str, str, bytes | None]:
    """(params, how it is signed, content type, a raw body instead of the params or None)."""
    sid = "SM" + draw(st.from_regex(r"[0-9a-f]{32}", fullmatch=True))
    params = {
        "AccountSid": "AC" + "0" * 32,
        "ApiVersion": "2010-04-01",
        "From": draw(
            st.sampled_from([f"whatsapp:{ACME_NUMBER}", ACME_NUMBER, "whatsapp:+15550009999", "ACME"])
        ),
        "MessageSid": sid,
        "MessageStatus": draw(
            st.sampled_from(["sent", "delivered", "read", "failed", "undelivered", "queued"])
        ),
        "To": draw(st.sampled_from([f"whatsapp:{CALLER}", CALLER, "whatsapp:+1", "+442071838750"])),
    }
    if draw(st.booleans()):
        params["ErrorCode"] = draw(st.sampled_from(["63016", "63024", "0", "x1"]))
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=3)):
        if draw(st.booleans()):
            params.pop(name, None)
        else:
            params[name] = draw(ESCAPED)
    pairs = list(params.items()) + draw(st.lists(st.tuples(ESCAPED, ESCAPED), max_size=3))
    signing = draw(st.sampled_from(["valid", "valid", "valid", "forged", "missing"]))
    content_type = draw(
        st.sampled_from(
            [
                "application/x-www-form-urlencoded",
                "application/x-www-form-urlencoded; charset=utf-8",
                "application/json",
                "",
            ]
        )
    )
    raw = draw(st.one_of(st.none(), st.binary(max_size=200)))
    return pairs, signing, content_type, raw


def request_for(
    url: str, port: int, pairs: list[tuple[str, str]], signing: str, content_type: str, raw: bytes | None
) -> bytes:
    body = raw if raw is not None else urlencode(pairs, quote_via=quote).encode()
    head = [f"POST {PATH} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(body)}"]
    if content_type:
        head.append(f"Content-Type: {content_type}")
    if signing == "valid":
        # Twilio signs the URL and the POST parameters sorted by name (the last of a repeated name
        # is what a dict of them holds, as the service reads them).
        head.append(f"X-Twilio-Signature: {RequestValidator(AUTH_TOKEN).compute_signature(url, dict(pairs))}")
    elif signing == "forged":
        head.append("X-Twilio-Signature: " + "A" * 27 + "=")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=callbacks())
def test_any_callback_gets_the_same_answer_and_keeps_the_same_on_both_paths(
    servers: Servers, case: tuple[list[tuple[str, str]], str, str, bytes | None]
) -> None:
    pairs, signing, content_type, raw = case
    handed = servers.asgi_calls[True]
    answers = {}
    for fast in (True, False):
        request = request_for(servers.url(fast), servers.ports[fast], pairs, signing, content_type, raw)
        answers[fast] = exchange(servers.ports[fast], request)
    assert answers[True] == answers[False]
    # The comparison means something only if the fast server answered the form itself: it hands
    # the ASGI handler only what is not a form (its 415).
    form = content_type.startswith("application/x-www-form-urlencoded")
    assert servers.asgi_calls[True] == handed + (0 if form else 1)
    assert servers.kept(True) == servers.kept(False)
    assert answers[True][0] in (
        b"HTTP/1.1 204 No Content",
        b"HTTP/1.1 400 Bad Request",
        b"HTTP/1.1 403 Forbidden",
        b"HTTP/1.1 415 Unsupported Media Type",
    ), answers[True]
