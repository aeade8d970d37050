"""Status callbacks answered in uvicorn's HTTP protocol, without an ASGI task: `ivr serve`'s protocol.

A status callback needs no Starlette and no coroutine of its own: its checks are synchronous
(signature, form, catalog snapshot) and its write is handed to the status writer, which answers
with a future. Run as ASGI, uvicorn's task, request/response cycle coroutines, proxy-headers
middleware and ASGI messages cost as much again as the checks (docs/performance.md, "Tenth
session"). So `StatusCallbackProtocol` takes a status callback, once its request line and headers
are in, off uvicorn's path to the app, and answers it itself, with the same functions as the ASGI
handler (`ivr.twilio.message_status`) and the same bytes on the wire (tests/test_status_protocol.py
holds the two paths equal).

It keeps uvicorn's own bookkeeping: the request's cycle is uvicorn's, so keep-alive, pipelined
requests (answered in order), flow control, graceful shutdown (a connection waits for its
callback's write) and the header deadline work as for any request. Whatever the fast path does not
handle goes to the ASGI app as before: another method or content type, a declared length over
the limit, `Expect: 100-continue`, a proxy's X-Forwarded-* headers to apply (when no public URL
is set, or with uvicorn's access log, which names the forwarded client), a catalog that must be
checked first, concurrency limits. With `--access-log`, the fast path logs uvicorn's line.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, NamedTuple

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, RequestResponseCycle
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

from consent_store import StoreError, StoreUnavailable
from consent_store.message_statuses import MessageStatusReport, start_keeping_status
from consent_store.writing import utc_now
from ivr.app import ConsentApp
from ivr.middleware import HeaderDeadlineProtocol
from ivr.runtime import Runtime
from ivr.security import MAX_BODY_BYTES, too_large_text
from ivr.twilio.catalog import Snapshot
from ivr.twilio.inbound import FORBIDDEN, webhook_headers
from ivr.twilio.message_status import (
    NO_CONTENT,
    Answer,
    Headers,
    head_answer,
    is_status_callback,
    not_kept,
    response_head,
    signed_status_form,
    status_report,
)

LOG = logging.getLogger(__name__)


class _Taken(NamedTuple):
    """A status callback answered in the protocol: uvicorn's cycle for it, and what it is checked
    against, read from its headers once."""

    cycle: RequestResponseCycle
    runtime: Runtime
    snapshot: Snapshot
    signature: str
    settings_header: str


class StatusCallbackProtocol(HeaderDeadlineProtocol):
    """uvicorn's httptools protocol with the header deadline, answering status callbacks itself."""

    # The callback being answered here (uvicorn's cycle for it), with what it is checked against.
    _status: _Taken | None = None
    _consent_app: ConsentApp | None = None
    _max_body_bytes = MAX_BODY_BYTES
    # Reading paused until the client takes the answers already written (see _write).
    _reading_held = False

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        app = self.app
        while not isinstance(app, ConsentApp) and hasattr(app, "app"):  # uvicorn's wrappers
            app = app.app
        self._consent_app = app if isinstance(app, ConsentApp) else None
        if self._consent_app is not None:
            self._max_body_bytes = self._consent_app.status_callbacks.max_body_bytes

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        taken = self._take(cycle, app)
        if taken is None:
            super()._start_asgi_task(cycle, app)
            return
        self._status = taken
        if not cycle.more_body:  # already all in (a pipelined request started late)
            self._answer_status()

    def _take(self, cycle: RequestResponseCycle, app: Any) -> _Taken | None:
        """What to answer this request with here, or None: the ASGI app answers it."""
        scope: Any = cycle.scope
        consent_app = self._consent_app
        if (
            consent_app is None
            or app is not self.app  # uvicorn's 503 for a concurrency limit
            or self.expect_100_continue
            or not is_status_callback(scope)
        ):
            return None
        runtime: Runtime | None = getattr(consent_app.state, "runtime", None)
        if runtime is None:
            return None
        signature, content_type, settings_header, too_large, forwarded = webhook_headers(
            scope, self._max_body_bytes
        )
        if too_large:
            return None  # the ASGI handler's 413, before a byte of the body is read
        if forwarded and (runtime.settings.public_url is None or self.access_log):
            # uvicorn's ProxyHeadersMiddleware may change the scheme the signature covers, or the
            # client the access log names: the ASGI path applies it.
            return None
        if head_answer(scope, content_type) is not None:
            return None
        snapshot = runtime.catalog.current_now()
        return None if snapshot is None else _Taken(cycle, runtime, snapshot, signature, settings_header)

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        status = self._status
        if status is None or status.cycle is not self.cycle:
            return
        cycle = status.cycle
        if len(cycle.body) > self._max_body_bytes:
            # As the ASGI handler answers it: the rest of the body is read and dropped (uvicorn's
            # on_body), and an endless one meets the request deadline.
            self._finish(cycle, (413, too_large_text(self._max_body_bytes), ()))
            return
        self.flow.resume_reading()  # read here, not by an app's receive(): uvicorn paused at 64 KiB

    def on_message_complete(self) -> None:
        super().on_message_complete()
        status = self._status
        if status is not None and status.cycle is self.cycle and not self.cycle.response_complete:
            self._answer_status()

    def _answer_status(self) -> None:
        assert self._status is not None
        cycle, runtime, snapshot, signature, settings_header = self._status
        try:
            scope: Any = cycle.scope
            received_at = utc_now()
            scope["app"] = self._consent_app
            form = signed_status_form(scope, runtime, bytes(cycle.body), signature, settings_header)
            if form is None:
                self._finish(cycle, (403, FORBIDDEN, ()))
                return
            report = status_report(form, received_at, snapshot.message_sender)
            if not isinstance(report, MessageStatusReport):
                self._finish(cycle, report)
                return
            try:
                kept = start_keeping_status(runtime.store, report)
            except StoreError as exc:
                self._finish(cycle, not_kept(report, exc))
                return
            kept.add_done_callback(functools.partial(self._kept, cycle, report))
        except Exception:
            LOG.exception("Exception in the status callback fast path")
            self._finish(cycle, (500, "Internal Server Error", ()))

    def _kept(self, cycle: RequestResponseCycle, report: MessageStatusReport, kept: Any) -> None:
        if kept.cancelled():
            self._finish(cycle, not_kept(report, StoreUnavailable("the write was cancelled")))
            return
        error = kept.exception()
        if error is None:
            self._finish(cycle, NO_CONTENT)
        elif isinstance(error, StoreError):
            self._finish(cycle, not_kept(report, error))
        else:
            LOG.error("Exception in the status callback fast path", exc_info=error)
            self._finish(cycle, (500, "Internal Server Error", ()))

    def _finish(self, cycle: RequestResponseCycle, answer: Answer) -> None:
        if self._status is not None and self._status.cycle is cycle:
            self._status = None
        self._write(cycle, *answer)

    def _write(self, cycle: RequestResponseCycle, status: int, text: str, headers: Headers) -> None:
        """Send the answer as uvicorn's cycle would send it, and end the cycle as it does."""
        if cycle.response_complete:  # e.g. the header deadline's 408 came first
            return
        if self.access_log:  # the line uvicorn's cycle logs
            scope: Any = cycle.scope
            self.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(scope),
                scope["method"],
                get_path_with_query_string(scope),
                scope["http_version"],
                status,
            )
        head, body = response_head(status, text, headers)
        content = [STATUS_LINE[status]]
        for name, value in [*self.server_state.default_headers, *head]:
            content += (name, b": ", value, b"\r\n")
        if not cycle.keep_alive:
            content.append(b"connection: close\r\n")
        content += (b"\r\n", body)
        if not self.transport.is_closing():
            self.transport.write(b"".join(content))
        cycle.response_started = cycle.response_complete = True
        cycle.message_event.set()
        if not cycle.keep_alive:
            self.transport.close()
        cycle.on_response()
        if self.flow.write_paused and not self.transport.is_closing():
            # The client is not reading its answers. uvicorn's cycle would wait for the buffer to
            # drain before its response is complete; here the answer is already complete, so no
            # more requests are read until the client catches up (else one pipelining without
            # reading would have answers buffered here without bound).
            self.flow.pause_reading()
            self._reading_held = True

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._reading_held:
            self._reading_held = False
            self.flow.resume_reading()


def status_callback_protocol(seconds: float) -> type[StatusCallbackProtocol]:
    """The protocol class for uvicorn's `http=` option, with this header deadline."""
    return type("StatusCallbackProtocol", (StatusCallbackProtocol,), {"header_seconds": seconds})
