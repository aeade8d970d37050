"""Time and size limits on slow or oversized clients, for `ivr serve`.

uvicorn closes idle keep-alive connections but has no deadline for a request's
headers or body: a client sending a byte a second would hold a connection (and a
task) for as long as it likes. `HeaderDeadlineProtocol` closes a connection whose
request line and headers take longer than the deadline, or exceed MAX_HEADER_BYTES;
`BodyDeadline` answers 408 to a body that takes longer. Neither ever touches a
request that arrives at a normal pace.
"""

from __future__ import annotations

import asyncio
import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

REQUEST_TIMEOUT_SECONDS = 10.0
# Request line plus headers; a Twilio webhook's are about 1 KB.
MAX_HEADER_BYTES = 64 * 1024


class HeadersTooLarge(Exception):
    pass


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose headers come too slowly
    (or not at all) or are too large (400)."""

    header_seconds = REQUEST_TIMEOUT_SECONDS
    _header_timer: asyncio.TimerHandle | None = None
    _header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()  # a connection that never sends a byte is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._arm_header_timer()

    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()

    def _count_header_bytes(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_HEADER_BYTES:
            raise HeadersTooLarge  # httptools reports it as a parser error: uvicorn answers 400

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_seconds, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def header_deadline_protocol(seconds: float) -> type[HeaderDeadlineProtocol]:
    """The protocol class for uvicorn's `http=` option, with this deadline."""
    return type("HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_seconds": seconds})


class BodyDeadline:
    """Answers 408 (and closes the connection) when a request's body is not all in within
    `seconds` of the request's start; once it is, `receive` waits as long as the app likes."""

    def __init__(self, app: ASGIApp, seconds: float = REQUEST_TIMEOUT_SECONDS) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = time.monotonic() + self.seconds
        body_done = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:  # e.g. a streaming response listening for a disconnect
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                # Raised where the app reads the body; Starlette answers it (ExceptionMiddleware).
                raise HTTPException(
                    408, f"Request body not received within {self.seconds:g} s.", {"Connection": "close"}
                ) from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, timed_receive, send)
