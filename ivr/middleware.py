"""Time and size limits on slow or oversized clients, for `ivr serve`.

uvicorn closes idle keep-alive connections but has no deadline for a request's
headers or body: a client sending a byte a second would hold a connection (and a
task) for as long as it likes. `HeaderDeadlineProtocol` closes a connection whose
request line and headers take longer than the deadline, or exceed MAX_HEADER_BYTES,
and answers 408 (then closes) when the body is not all in by the same deadline. In the
protocol, with at most one timer per connection: each request only notes its deadline, and the
timer, when it fires, closes the connection if the request in progress is past it, or waits on
for the rest of it (an ASGI middleware wrapping `receive` in `asyncio.wait_for` did the same but
cost the voice webhook a third of its throughput, wrk: 2,954 -> 1,879 requests/s; a timer armed
and cancelled per request cost the bare floor about 5%). It never touches a request that arrives
at a normal pace.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ivr.exceptions import HeadersTooLarge

REQUEST_TIMEOUT_SECONDS = 10.0
# Request line plus headers; a Twilio webhook's are about 1 KB.
MAX_HEADER_BYTES = 64 * 1024
HEADERS_TOO_LARGE = "Request headers too large."


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose headers come too slowly
    (or not at all) or are too large (400)."""

    header_seconds = REQUEST_TIMEOUT_SECONDS
    _header_timer: asyncio.TimerHandle | None = None
    # When the request in progress must be all in (loop time); None between requests.
    _deadline: float | None = None
    _header_bytes = 0  # of the request in progress, counted at the end of each read
    _chunk_bytes = 0  # the read being parsed
    _headers_done = False
    # In the read being parsed: a request began, and one ended (pipelined requests).
    _began_in_read = _ended_in_read = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._expect_request()  # a connection that never sends a byte is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._chunk_bytes = len(data)
        self._began_in_read = self._ended_in_read = False
        super().data_received(data)  # the parser's callbacks below run in here
        if self._headers_done or self._deadline is None or self.transport.is_closing():
            return
        if self._began_in_read and self._ended_in_read:
            # Pipelined: the read ended other requests before this one began, and how much of it
            # is this head is not known. Not counted: the next read, if the head goes on, counts
            # whole, and a head that ends is measured exactly (on_headers_complete).
            return
        # A request's head still incomplete after this read: all of the read is head, except the
        # end of an earlier request's body if this request began in it (an upper bound).
        self._header_bytes += len(data)
        if self._header_bytes > MAX_HEADER_BYTES:
            self.logger.warning(HEADERS_TOO_LARGE)
            self.send_400_response(HEADERS_TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._began_in_read = True
        self._header_bytes = 0
        self._headers_done = False
        self._expect_request()

    def on_headers_complete(self) -> None:
        # Counted per read, not per header (a Python call for each header cost the status
        # webhook about 2% of its CPU): a head completed within one read is measured only if
        # that read could hold more than the limit.
        if self._header_bytes + self._chunk_bytes > MAX_HEADER_BYTES and self._head_size() > MAX_HEADER_BYTES:
            raise HeadersTooLarge  # httptools reports it as a parser error: uvicorn answers 400
        self._headers_done = True  # the timer runs on until the body is in
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._ended_in_read = True
        self._deadline = None  # the timer, if armed, stays: it finds no request when it fires
        super().on_message_complete()

    def _head_size(self) -> int:
        """The request line's target and the headers, as uvicorn holds them."""
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def _expect_request(self) -> None:
        self._deadline = self.loop.time() + self.header_seconds
        if self._header_timer is None:  # one armed for an earlier request fires sooner: it re-arms
            self._header_timer = self.loop.call_later(self.header_seconds, self._on_timer)

    def _on_timer(self) -> None:
        self._header_timer = None
        if self._deadline is None:  # between requests: the next one arms it again
            return
        remaining = self._deadline - self.loop.time()
        if remaining > 0:
            self._header_timer = self.loop.call_later(remaining, self._on_timer)
            return
        self._headers_too_slow()

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        if self.transport.is_closing():
            return
        cycle = getattr(self, "cycle", None)
        if self._headers_done and cycle is not None and not cycle.response_started:
            # The app waits for a body that does not come: answer for it, then close (uvicorn
            # tells the app the client went away).
            text = f"Request body not received within {self.header_seconds:g} s.".encode()
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"connection: close\r\ncontent-length: " + str(len(text)).encode() + b"\r\n\r\n" + text
            )
            cycle.response_started = cycle.response_complete = True
        self.transport.close()


def header_deadline_protocol(seconds: float) -> type[HeaderDeadlineProtocol]:
    """The protocol class for uvicorn's `http=` option, with this deadline."""
    return type("HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_seconds": seconds})
