"""POST /twilio/message-status is answered before Starlette's middleware: hostile inputs there.

The status webhook runs as plain ASGI (ivr.twilio.message_status.MessageStatusCallbacks), called
by ivr.app.ConsentApp before the middleware stack. These tests attack what that path handles
itself: the method, the content type, a body declared or streamed over the limit, a client that
leaves, an error inside the handler, the root path, and that every other request still goes
through Starlette's middleware and routing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from ivr.security import MAX_BODY_BYTES, SECURITY_HEADERS
from ivr.twilio.emulator import new_sid
from ivr.twilio.message_status import MessageStatusCallbacks
from ivr.twilio.status_emulator import MessageStatusEmulator
from tests.conftest import ACME_NUMBER, CALLER, Service

PATH = "/twilio/message-status"
Message = dict[str, Any]


def kept(service: Service) -> int:
    with sqlite3.connect(service.db_url.removeprefix("sqlite:///")) as db:
        return int(db.execute("SELECT count(*) FROM message_statuses").fetchone()[0])


def signed_params(service: Service) -> tuple[dict[str, str], dict[str, str]]:
    sender = MessageStatusEmulator(service.twilio)
    params = sender.params(new_sid("SM"), "delivered", f"whatsapp:{CALLER}", f"whatsapp:{ACME_NUMBER}")
    return params, service.twilio.signature_headers(service.twilio.url(PATH), params)


async def call_asgi(
    service: Service, messages: list[Message], headers: list[tuple[bytes, bytes]], root_path: str = ""
) -> list[Message]:
    """Run one request through the app itself, with the body messages given (ASGI as uvicorn)."""
    assert service.app is not None
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": root_path + PATH,
        "raw_path": (root_path + PATH).encode(),
        "root_path": root_path,
        "query_string": b"",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 4000),
        "headers": [(b"host", b"testserver"), *headers],
    }
    pending = list(messages)
    sent: list[Message] = []

    async def receive() -> Message:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    app: Callable[[Any, Any, Any], Awaitable[None]] = service.app
    await app(scope, receive, send)
    return sent


def form_headers(signature: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/x-www-form-urlencoded")] + [
        (k.lower().encode(), v.encode()) for k, v in signature.items()
    ]


async def test_a_signed_callback_is_kept_and_answered_with_the_security_headers(service: Service) -> None:
    params, headers = signed_params(service)
    response = await service.client.post(PATH, data=params, headers=headers)
    assert response.status_code == 204 and response.content == b""
    assert "content-length" not in response.headers  # none on a 204 (RFC 9110 8.6)
    for name, value in SECURITY_HEADERS:
        assert response.headers[name.decode()] == value.decode()
    assert kept(service) == 1


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "HEAD"])
async def test_other_methods_get_405_naming_post_and_keep_nothing(service: Service, method: str) -> None:
    params, headers = signed_params(service)
    response = await service.client.request(method, PATH, params=params, headers=headers)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.headers["x-frame-options"] == "DENY"
    assert kept(service) == 0


@pytest.mark.parametrize(
    "content_type",
    [None, "multipart/form-data; boundary=x", "application/json", "text/plain"],
)
async def test_a_body_that_is_not_a_urlencoded_form_gets_415_and_keeps_nothing(
    service: Service, content_type: str | None
) -> None:
    params, signature = signed_params(service)
    headers = dict(signature)
    if content_type is not None:
        headers["content-type"] = content_type
    body = urlencode(params).encode()
    if content_type and content_type.startswith("multipart"):
        body = (
            b"".join(
                f'--x\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                for k, v in params.items()
            )
            + b"--x--\r\n"
        )
    response = await service.client.post(PATH, content=body, headers=headers)
    assert response.status_code == 415, response.text
    assert "application/x-www-form-urlencoded" in response.text
    assert kept(service) == 0


async def test_a_client_that_leaves_mid_body_is_not_answered_and_nothing_is_kept(service: Service) -> None:
    params, signature = signed_params(service)
    body = urlencode(params).encode()
    sent = await call_asgi(
        service,
        [{"type": "http.request", "body": body[:40], "more_body": True}, {"type": "http.disconnect"}],
        form_headers(signature),
    )
    assert sent == []
    assert kept(service) == 0


async def test_a_streamed_body_over_the_limit_gets_413_and_keeps_nothing(service: Service) -> None:
    params, signature = signed_params(service)
    chunk = b"Body=" + b"x" * 65_536 + b"&"
    chunks = [{"type": "http.request", "body": chunk, "more_body": True}] * (MAX_BODY_BYTES // len(chunk) + 2)
    last = {"type": "http.request", "body": urlencode(params).encode(), "more_body": False}
    # No Content-Length: the limit holds on what arrives, not on what is declared.
    sent = await call_asgi(service, [*chunks, last], form_headers(signature))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 413
    assert kept(service) == 0


@pytest.mark.parametrize("declared", [str(MAX_BODY_BYTES + 1), "99999999999999999999", "12x", "-1", ""])
async def test_a_declared_length_over_the_limit_or_not_a_number_gets_413_unread(
    service: Service, declared: str
) -> None:
    params, signature = signed_params(service)
    body = {"type": "http.request", "body": urlencode(params).encode(), "more_body": False}
    # A good Content-Length beside the bad one does not hide it.
    lengths = [(b"content-length", str(len(body["body"])).encode()), (b"content-length", declared.encode())]
    pending = [body]
    sent = await call_asgi(service, pending, form_headers(signature) + lengths)
    assert sent[0]["status"] == 413
    assert b"Request body too large" in sent[1]["body"]
    assert (b"x-frame-options", b"DENY") in sent[0]["headers"]
    assert pending == [body]  # refused before a byte of the body was read
    assert kept(service) == 0


async def test_an_error_inside_the_handler_gets_a_500_with_the_security_headers_then_is_raised(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As Starlette's ServerErrorMiddleware does for every other request: answer 500, then raise
    for uvicorn to log it."""
    sent: list[Message] = []

    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("ivr.twilio.message_status.parse_urlencoded", broken)
    params, signature = signed_params(service)
    handler = MessageStatusCallbacks()
    pending = [{"type": "http.request", "body": urlencode(params).encode(), "more_body": False}]

    async def receive() -> Message:
        return pending.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": PATH,
        "headers": form_headers(signature),
        "app": service.app,
    }
    with pytest.raises(RuntimeError, match="boom"):
        await handler(scope, receive, send)
    assert sent[0]["status"] == 500 and sent[1]["body"] == b"Internal Server Error"
    for header in SECURITY_HEADERS:
        assert header in sent[0]["headers"]
    assert kept(service) == 0


async def test_a_callback_split_over_several_messages_is_read_whole(service: Service) -> None:
    params, signature = signed_params(service)
    body = urlencode(params).encode()
    pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
    messages = [{"type": "http.request", "body": p, "more_body": True} for p in pieces]
    messages[-1]["more_body"] = False
    sent = await call_asgi(service, messages, form_headers(signature))
    assert sent[0]["status"] == 204
    assert kept(service) == 1


async def test_under_a_root_path_the_webhook_is_still_found(service: Service) -> None:
    """Mounted under a root path (ASGI: the path includes it), the status path is matched as
    Starlette's router matches routes: without the root path."""
    params, _ = signed_params(service)
    body = urlencode(params).encode()
    for root_path, expected_status in (("/ivr", 403), ("", 403)):
        sent = await call_asgi(
            service,
            [{"type": "http.request", "body": body, "more_body": False}],
            [(b"content-type", b"application/x-www-form-urlencoded"), (b"x-twilio-signature", b"forged")],
            root_path=root_path,
        )
        assert sent[0]["status"] == expected_status
    assert kept(service) == 0


async def test_under_a_root_path_a_callback_signed_for_its_url_is_kept(service: Service) -> None:
    """Twilio signs the URL it calls, root path included once: the service joins its base URL
    (Host and root path) with the path under the root, not with the whole ASGI path."""
    sender = MessageStatusEmulator(service.twilio)
    params = sender.params(new_sid("SM"), "delivered", f"whatsapp:{CALLER}", f"whatsapp:{ACME_NUMBER}")
    body = {"type": "http.request", "body": urlencode(params).encode(), "more_body": False}
    answers = {}
    # Signed for the URL Twilio called, and for the root path twice (what was checked before).
    for signed_for in ("/ivr" + PATH, "/ivr/ivr" + PATH):
        signed = service.twilio.signature_headers("http://testserver" + signed_for, params)
        sent = await call_asgi(service, [dict(body)], form_headers(signed), root_path="/ivr")
        answers[signed_for] = sent[0]["status"]
    assert answers == {"/ivr" + PATH: 204, "/ivr/ivr" + PATH: 403}
    assert kept(service) == 1


async def test_under_a_root_path_the_voice_webhook_checks_the_url_twilio_called(service: Service) -> None:
    assert service.app is not None
    params = service.twilio.call_params(new_sid("CA"), ACME_NUMBER, CALLER)
    transport = httpx.ASGITransport(app=service.app, root_path="/ivr")
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        answers = {}
        for signed_for in ("/ivr/twilio/voice", "/ivr/ivr/twilio/voice"):
            headers = service.twilio.signature_headers("http://testserver" + signed_for, params)
            answers[signed_for] = await client.post("/ivr/twilio/voice", data=params, headers=headers)
    assert answers["/ivr/ivr/twilio/voice"].status_code == 403
    twiml = answers["/ivr/twilio/voice"]
    assert twiml.status_code == 200, twiml.text[:200]
    # The callbacks it gives Twilio are under the root path, once.
    assert 'recordingStatusCallback="http://testserver/ivr/twilio/recording"' in twiml.text
    assert 'action="http://testserver/ivr/twilio/gather?' in twiml.text


async def test_every_other_request_still_goes_through_the_routing(service: Service) -> None:
    assert (await service.client.get("/healthz")).status_code == 200
    # A path that only looks like the status webhook is not it.
    params, headers = signed_params(service)
    for path in (PATH + "/x", PATH.upper(), "/twilio/message-statusx"):
        response = await service.client.post(path, data=params, headers=headers)
        assert response.status_code in (404, 405), (path, response.status_code)
    assert kept(service) == 0
