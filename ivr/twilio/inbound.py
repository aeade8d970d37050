"""What a Twilio webhook receives: the signed parameters, the URL Twilio signed, the simulator's marks.

A request without a valid X-Twilio-Signature gets None from _from_twilio (and one log line saying
why, on the webhooks' logger "ivr.twilio.webhooks", the name operators filter on); the handlers in
ivr.twilio.webhooks answer it 403. REHEARSAL_PARAM and simulated_mark are how this service's own
simulator (/try, `ivr call`) marks a rehearsal or a simulated call that records.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import re
from typing import NamedTuple
from urllib.parse import unquote_to_bytes

from starlette.datastructures import URL
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope

from ivr.exceptions import BodyTooLarge
from ivr.runtime import Runtime, request_runtime
from ivr.security import MAX_BODY_BYTES, length_too_large

LOG = logging.getLogger("ivr.twilio.webhooks")


def _twiml(twiml: str) -> Response:
    return Response(twiml, media_type="application/xml")


FORBIDDEN = "Forbidden: missing or invalid X-Twilio-Signature."


def _forbidden() -> Response:
    return PlainTextResponse(FORBIDDEN, status_code=403)


def _bad_request(message: str) -> Response:
    return PlainTextResponse(f"Bad request: {message}", status_code=400)


def _bad_sid(name: str, value: str, prefix: str) -> Response:
    return _bad_request(f"{name} {value[:40]!r} is not a Twilio SID ({prefix} and 32 lower-case hex digits).")


def _not_one_of(name: str, value: str, allowed: frozenset[str]) -> Response:
    return _bad_request(f"{name} {value[:40]!r} is not one of Twilio's: {', '.join(sorted(allowed))}.")


def _base_url(request: Request, public_url: str | None) -> str:
    """Where Twilio reaches this service: IVR_PUBLIC_URL, else the scheme and Host of the request."""
    return base_url_of(request.scope, public_url)


# A character that cannot be in a Host header's value (it would change the URL's meaning).
_NOT_IN_HOST = re.compile(r"[/?#@ \\]")


def base_url_of(scope: Scope, public_url: str | None) -> str:
    """_base_url from the ASGI scope (for handlers outside Starlette's routing)."""
    if public_url:
        return public_url
    if not scope.get("root_path"):
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
                if host and _NOT_IN_HOST.search(host) is None:
                    return f"{scope['scheme']}://{host}"
                break
    url = URL(scope=scope)  # no usable Host header (or a root path): Starlette's own rules
    return f"{url.scheme}://{url.netloc}" + (scope.get("root_path") or "")


def _signed_url(scope: Scope, base_url: str) -> str:
    """The URL Twilio signed: where it sent the request, query string included. The base URL
    ends with the root path (IVR_PUBLIC_URL is where Twilio calls; else Host and root path), and
    an ASGI path starts with it: it is joined once."""
    query: bytes = scope.get("query_string", b"")
    return base_url + route_path(scope) + ("?" + query.decode() if query else "")


def route_path(scope: Scope) -> str:
    """The path the routes match: without the root path (as Starlette's router reads it)."""
    path: str = scope["path"]
    root: str = scope.get("root_path") or ""
    if root and path.startswith(root + "/"):
        return path[len(root) :]
    return path


def unquote_form_value(value: str) -> str:
    """unquote_plus(value): the same text (a property test holds them equal), in half the time
    (one decode of the whole value instead of one per run of escapes)."""
    return unquote_to_bytes(value.replace("+", " ")).decode("utf-8", "replace")


# The same few escaped values come again and again (the called numbers, a caller's number on
# each webhook of a call): unquote each once.
_unquote = functools.lru_cache(maxsize=4096)(unquote_form_value)


def parse_urlencoded(body: str) -> list[tuple[str, str]]:
    """What parse_qsl(body, keep_blank_values=True) returns, without unquoting plain values."""
    pairs = []
    for part in body.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "%" in part or "+" in part:  # most parts are plain: one look each
            if "%" in name or "+" in name:
                name = _unquote(name)
            if "%" in value or "+" in value:
                value = _unquote(value) if len(value) <= 64 else unquote_form_value(value)
        pairs.append((name, value))
    return pairs


async def read_body(receive: Receive, limit: int | None = None) -> bytes | None:
    """The whole body, read straight from the ASGI messages (once: nothing else reads it), or
    None if the client went away first. BodyTooLarge once it is over `limit` bytes
    (HardeningMiddleware limits it for the handlers behind it)."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if limit is not None and size > limit:
            raise BodyTooLarge
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _body(request: Request) -> bytes:
    body = await read_body(request.receive)
    if body is None:
        raise ClientDisconnect()
    return body


async def _parameters(request: Request, content_type: str) -> list[tuple[str, str]]:
    """The posted parameters, in order (Twilio posts urlencoded UTF-8 forms)."""
    if request.method != "POST":
        return []
    if content_type.startswith("application/x-www-form-urlencoded"):
        return parse_urlencoded((await _body(request)).decode("utf-8", errors="replace"))
    return [(k, str(v)) for k, v in (await request.form()).multi_items()]


# A webhook's parameters: Twilio sends each name once (a repeated name keeps its last value).
Form = dict[str, str]


class WebhookHeaders(NamedTuple):
    """What the checks read from a webhook's headers, in one pass over them."""

    signature: str  # X-Twilio-Signature
    content_type: str
    settings_header: str  # X-Twilio-Webhooks-Signature-Settings
    too_large: bool  # a Content-Length over the limit, or not a number
    forwarded: bool  # X-Forwarded-Proto or -For: what uvicorn's ProxyHeadersMiddleware applies


def webhook_headers(scope: Scope, max_body_bytes: int = MAX_BODY_BYTES) -> WebhookHeaders:
    """The request's headers as the checks read them (a loop, not a dict: every status callback
    comes here)."""
    signature = content_type = settings_header = ""
    too_large = forwarded = False
    for name, value in scope["headers"]:
        if name == b"x-twilio-signature":
            signature = value.decode("latin-1")
        elif name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"content-length":
            too_large = too_large or length_too_large(value, max_body_bytes)
        elif name == b"x-twilio-webhooks-signature-settings":
            settings_header = value.decode("latin-1")
        elif name == b"x-forwarded-proto" or name == b"x-forwarded-for":
            forwarded = True
    return WebhookHeaders(signature, content_type, settings_header, too_large, forwarded)


def signature_headers(scope: Scope) -> tuple[str, str, str]:
    """The request's X-Twilio-Signature, Content-Type and X-Twilio-Webhooks-Signature-Settings."""
    headers = webhook_headers(scope)
    return headers.signature, headers.content_type, headers.settings_header


async def _signed_form(request: Request, runtime: Runtime, base_url: str) -> Form | None:
    """The request's parameters if Twilio signed them, else None (and one log line saying why)."""
    signature, content_type, settings_header = signature_headers(request.scope)
    items = await _parameters(request, content_type)
    # A callback configured as GET carries its parameters in the signed URL's query.
    query_items = request.query_params.multi_items() if request.method == "GET" else []
    return signed_form(request.scope, runtime, base_url, items, query_items, signature, settings_header)


def signed_form(
    scope: Scope,
    runtime: Runtime,
    base_url: str,
    items: list[tuple[str, str]],
    query_items: list[tuple[str, str]],
    signature: str,
    settings_header: str,
) -> Form | None:
    """The parameters (body, then query) if Twilio signed them, else None and one log line."""
    account_sid = _first(items, "AccountSid") or _first(query_items, "AccountSid")
    verdict = runtime.webhook_secrets.check(
        _signed_url(scope, base_url),
        items,
        signature,
        account_sid,
        settings_header,
        functools.partial(_other_urls, scope, base_url, runtime.settings.public_url),
    )
    if not verdict.ok:
        query = scope.get("query_string", b"")
        LOG.warning(
            "refused %s %s: %s; checked %s for AccountSid %s with %s; likely fix: %s",
            scope["method"],
            URL(scope=scope).path,
            verdict.problem,
            # The query may carry a caller's number (a GET callback): the log names the URL only.
            base_url + route_path(scope) + ("?..." if query else ""),
            verdict.account_sid or "(none)",
            f"{', '.join(verdict.tried)} ({verdict.algorithm})" if verdict.tried else "no secret",
            verdict.fix,
        )
        return None
    return dict([*items, *query_items]) if query_items else dict(items)


def _first(items: list[tuple[str, str]], name: str) -> str:
    """The first value of `name` among the parameters ('' if none)."""
    for key, value in items:
        if key == name:
            return value
    return ""


def _other_urls(scope: Scope, base_url: str, public_url: str | None) -> list[tuple[str, str]]:
    """URLs a refused request may have been signed for instead, and what each one means."""
    host_url = base_url_of(scope, None)
    scheme, _, rest = host_url.partition("://")
    flipped = ("https" if scheme == "http" else "http") + "://" + rest
    others = []
    if public_url and host_url != base_url:
        others.append(
            (
                _signed_url(scope, host_url),
                f"IVR_PUBLIC_URL ({public_url}) differs from the host Twilio called ({host_url}): "
                "set IVR_PUBLIC_URL to the URL in the number's Voice configuration",
            )
        )
    others.append(
        (
            _signed_url(scope, flipped),
            f"Twilio called {flipped} but this server saw {scheme}: the proxy in front is not in "
            f"--forwarded-allow-ips (its X-Forwarded-Proto is ignored), or set IVR_PUBLIC_URL={flipped}",
        )
    )
    return others


async def _from_twilio(request: Request) -> tuple[Runtime, str, Form | None]:
    """The runtime, this service's base URL, and the parameters if Twilio signed the request."""
    runtime = request_runtime(request)
    base_url = _base_url(request, runtime.settings.public_url)
    return runtime, base_url, await _signed_form(request, runtime, base_url)


# Set only by this service's own simulator (/try, `ivr call`), which signs with the auth token like
# Twilio: "published" or "draft" (version 0 in the call state), a rehearsal that writes nothing;
# or simulated_mark(), a call that records, its decision flagged `"simulated": true`.
REHEARSAL_PARAM = "IvrRehearsal"


def _rehearsal(form: Form) -> str | None:
    value = str(form.get(REHEARSAL_PARAM) or "")
    return value if value in ("published", "draft") else None


def simulated_mark(auth_token: str, call_sid: str) -> str:
    """REHEARSAL_PARAM's value for a simulated call that records (`ivr call --record`).

    Bound to its CallSid by the auth token, so a signed request cannot be re-cut (see the
    module docstring) into one marking a real call simulated: the mark is checked, not trusted.
    """
    mac = hmac.new(auth_token.encode("utf-8"), f"simulated {call_sid}".encode(), hashlib.sha256)
    return "simulated." + mac.hexdigest()[:32]


def _simulated(runtime: Runtime, form: Form) -> bool:
    value = form.get(REHEARSAL_PARAM) or ""
    if not value.startswith("simulated."):
        return False
    if hmac.compare_digest(value, simulated_mark(runtime.auth_token, form.get("CallSid") or "")):
        return True
    LOG.warning("call %s carries a simulated mark that does not hold: recorded as real", form.get("CallSid"))
    return False
