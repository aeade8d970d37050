"""HTTP hardening for every response and request: security headers and a request body limit.

Pure ASGI middleware, so it covers webhooks, pages, the API and static files alike; the status
callbacks, answered before the middleware (`ivr.app.ConsentApp`, `ivr.twilio.status_protocol`),
apply the same limit and headers with `length_too_large`, `too_large` and SECURITY_HEADERS.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ivr.exceptions import BodyTooLarge

MAX_BODY_BYTES = 256 * 1024

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        b"form-action 'self'; object-src 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


class HardeningMiddleware:
    """Adds the security headers; answers 413 to bodies over MAX_BODY_BYTES before the app reads them."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if declared_too_large(scope, self.max_body_bytes):
            await too_large(send, self.max_body_bytes)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), *SECURITY_HEADERS]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except BodyTooLarge:
            if not started:
                await too_large(send, self.max_body_bytes)


def length_too_large(value: bytes, max_body_bytes: int) -> bool:
    """True if a Content-Length value is over the limit (or not a number)."""
    return not value.isdigit() or int(value) > max_body_bytes


def declared_too_large(scope: Scope, max_body_bytes: int) -> bool:
    """True if a Content-Length of the request is over the limit (or not a number)."""
    for name, value in scope["headers"]:
        if name == b"content-length" and length_too_large(value, max_body_bytes):
            return True
    return False


def too_large_text(max_body_bytes: int) -> str:
    """What a 413 for a body over the limit says."""
    return f"Request body too large (limit {max_body_bytes} bytes)."


async def too_large(send: Send, max_body_bytes: int) -> None:
    """The 413 answer to a body over the limit, before the app read it."""
    body = too_large_text(max_body_bytes).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
