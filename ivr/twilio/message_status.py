"""POST /twilio/message-status: Twilio's status callbacks of the messages businesses send.

A business's sending system sets this URL as the StatusCallback of its WhatsApp and SMS
messages; Twilio then posts each status change (https://www.twilio.com/docs/messaging/guides/
track-outbound-message-status): MessageSid, MessageStatus, To and From (`whatsapp:+E164` on
WhatsApp), AccountSid, ErrorCode only when the message failed or went undelivered, and other
parameters that vary by channel (ChannelToAddress, ChannelPrefix, SmsSid, SmsStatus,
ApiVersion, MessagingServiceSid, RawDlrDoneDate, ...), all of them signed. The business is the
sender's: `From` among its WhatsApp sender numbers (`--whatsapp-number`), else its numbers.

Checked like the voice webhooks: no valid X-Twilio-Signature, 403 and nothing written; a
MessageSid not of Twilio's form, a status outside Twilio's list, a To that is not a phone
number or an ErrorCode that is not a number, 400 and nothing written; a body that is not a
urlencoded form 415, another method 405. Answered before Starlette's middleware and routing
(`MessageStatusCallbacks`). The status is kept
durably (one grouped commit, outside the hash chain) before the 204; if it cannot be, 503 (Twilio
retries only when the URL's connection overrides ask for it, e.g. `#rc=3&rp=5xx`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from starlette.types import Receive, Scope, Send

from consent_store import Business, StoreError
from consent_store.message_statuses import MessageChannel, MessageStatusReport, record_message_status
from consent_store.phone import is_e164, masked
from consent_store.writing import utc_now
from ivr.exceptions import BodyTooLarge
from ivr.runtime import Runtime
from ivr.security import MAX_BODY_BYTES, SECURITY_HEADERS, too_large
from ivr.twilio.inbound import (
    FORBIDDEN,
    base_url_of,
    parse_urlencoded,
    read_body,
    route_path,
    signed_form,
    webhook_headers,
)
from ivr.twilio.signature import twilio_sid_ok

LOG = logging.getLogger(__name__)
Headers = tuple[tuple[bytes, bytes], ...]

MESSAGE_STATUS_PATH = "/twilio/message-status"

# A Message resource's status values (https://www.twilio.com/docs/messaging/api/message-resource
# #message-status-values): a status callback reports one of them (never the initial `accepted`
# or `queued` of a message created without a Messaging Service, but accepting every value
# keeps a status Twilio adds to the list from being refused as malformed would lose it).
MESSAGE_STATUSES = frozenset(
    (
        "queued",
        "sending",
        "sent",
        "failed",
        "delivered",
        "undelivered",
        "receiving",
        "received",
        "accepted",
        "scheduled",
        "read",
        "partially_delivered",
        "canceled",
    )
)
WHATSAPP_PREFIX = "whatsapp:"
FORM_TYPE = "application/x-www-form-urlencoded"
# An SMS sender may be an alphanumeric sender ID (up to 11 letters, digits and spaces).
_ALPHANUMERIC_SENDER = re.compile(r"[A-Za-z0-9 ]{1,11}")
_ERROR_CODE = re.compile(r"[0-9]{1,6}")


def _address(value: str) -> tuple[MessageChannel, str]:
    if value.startswith(WHATSAPP_PREFIX):
        return "whatsapp", value[len(WHATSAPP_PREFIX) :]
    return "sms", value


def parse_status(
    form: dict[str, str], received_at: str, business: str | None = None
) -> MessageStatusReport | str:
    """The callback's report (kept for `business`), or what is wrong with it (one sentence)."""
    sid, status = form.get("MessageSid") or "", form.get("MessageStatus") or ""
    to, sender = form.get("To") or "", form.get("From") or ""
    if not sid or not status or not to or not sender:
        return "MessageSid, MessageStatus, To and From are required."
    if not (twilio_sid_ok(sid, "SM") or twilio_sid_ok(sid, "MM")):
        return f"MessageSid {sid[:40]!r} is not a Twilio SID (SM or MM and 32 lower-case hex digits)."
    if status not in MESSAGE_STATUSES:
        return f"MessageStatus {status[:40]!r} is not one of Twilio's: {', '.join(sorted(MESSAGE_STATUSES))}."
    channel, to_number = _address(to)
    from_channel, from_number = _address(sender)
    if from_channel != channel:
        return "To and From are not on the same channel (whatsapp: on one of them only)."
    if not is_e164(to_number):
        return f"To {to[:40]!r} is not a phone number in E.164 form."
    if not (is_e164(from_number) or (channel == "sms" and _ALPHANUMERIC_SENDER.fullmatch(from_number))):
        return f"From {sender[:40]!r} is not a phone number in E.164 form nor an alphanumeric sender ID."
    code = form.get("ErrorCode") or ""
    if code and not _ERROR_CODE.fullmatch(code):
        return f"ErrorCode {code[:16]!r} is not a number."
    account_sid = form.get("AccountSid") or None
    if account_sid is not None and not twilio_sid_ok(account_sid, "AC"):
        return f"AccountSid {account_sid[:40]!r} is not a Twilio SID (AC and 32 lower-case hex digits)."
    return MessageStatusReport(
        message_sid=sid,
        status=status,
        to_number=to_number,
        from_number=from_number,
        channel=channel,
        received_at=received_at,
        error_code=int(code) if code else None,
        account_sid=account_sid,
        business=business,
    )


Answer = tuple[int, str, Headers]
# The sender's business from (channel, number): a catalog snapshot's `message_sender`.
SenderLookup = Callable[[str, str], Business | None]
NO_CONTENT: Answer = (204, "", ())


def head_answer(scope: Scope, content_type: str) -> Answer | None:
    """What the request line and headers alone answer (405, 415), or None: read the body."""
    if scope["method"] != "POST":
        # "Twilio sends status callback requests as HTTP POST requests" (the guide above).
        return 405, "Method Not Allowed", ((b"allow", b"POST"),)
    if not content_type.startswith(FORM_TYPE):
        # Twilio posts every status callback as a urlencoded form: nothing else is parsed.
        return 415, f"Unsupported media type: a status callback is {FORM_TYPE}.", ()
    return None


def signed_status_form(
    scope: Scope, runtime: Runtime, body: bytes, signature: str, settings_header: str
) -> dict[str, str] | None:
    """The callback's parameters if Twilio signed them, else None (and one log line)."""
    items = parse_urlencoded(body.decode("utf-8", errors="replace"))
    base_url = base_url_of(scope, runtime.settings.public_url)
    return signed_form(scope, runtime, base_url, items, [], signature, settings_header)


def status_report(
    form: dict[str, str], received_at: str, sender: SenderLookup
) -> MessageStatusReport | Answer:
    """The report to keep for a signed callback, or its 400."""
    # The sender's business, looked up before the checks so the report is built once (a
    # malformed From finds none, and the checks below refuse it).
    business = sender(*_address(form.get("From") or ""))
    report = parse_status(form, received_at, business.name if business is not None else None)
    if isinstance(report, str):
        return 400, f"Bad request: {report}", ()
    if business is None:
        LOG.info(
            "status %s of message %s from %s, not a business's number: kept without a business",
            report.status,
            report.message_sid,
            masked(report.from_number),
        )
    return report


def not_kept(report: MessageStatusReport, error: StoreError) -> Answer:
    """The answer when the store could not keep `report` (Twilio retries a 5xx only when the URL's
    connection overrides ask for it)."""
    LOG.error("could not keep status %s of message %s: %s", report.status, report.message_sid, error)
    return 503, "Service unavailable: status not stored.", ()


class MessageStatusCallbacks:
    """POST /twilio/message-status as plain ASGI, answered before Starlette's middleware and
    routing (`ivr.app.ConsentApp`): millions a day.

    The same checks as every webhook (signature through `signed_form`), and what the middleware
    gives every other request, done here: the body limit and the security headers of
    `HardeningMiddleware`, and a 500 for an error (then raised on to uvicorn's log) as Starlette's
    `ServerErrorMiddleware` answers. Starlette's request, routing, response objects and middleware
    layers cost more than the checks themselves (docs/performance.md). Under `ivr serve` most
    callbacks do not even come here: `ivr.twilio.status_protocol` answers them in uvicorn's
    protocol with the same functions, and leaves the rest (a proxy's headers to apply, a declared
    length over the limit, another method, ...) to this class.
    """

    def __init__(self, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            answer = await self._answer(scope, receive)
        except BodyTooLarge:
            await too_large(send, self.max_body_bytes)
            return
        except Exception:
            await _reply(send, 500, "Internal Server Error")
            raise
        if answer is not None:  # None: the client went away, nothing to answer, nothing written
            await _reply(send, *answer)

    async def _answer(self, scope: Scope, receive: Receive) -> Answer | None:
        signature, content_type, settings_header, too_large, _ = webhook_headers(scope, self.max_body_bytes)
        if too_large:
            raise BodyTooLarge
        refused = head_answer(scope, content_type)
        if refused is not None:
            return refused
        received_at = utc_now()
        body = await read_body(receive, self.max_body_bytes)
        if body is None:
            return None
        runtime: Runtime = scope["app"].state.runtime
        form = signed_status_form(scope, runtime, body, signature, settings_header)
        if form is None:
            return 403, FORBIDDEN, ()
        report = status_report(form, received_at, (await runtime.catalog.current()).message_sender)
        if not isinstance(report, MessageStatusReport):
            return report
        try:
            await record_message_status(runtime.store, report)
        except StoreError as exc:
            return not_kept(report, exc)
        return NO_CONTENT


def is_status_callback(scope: Scope) -> bool:
    """True for a request to the status webhook (whatever its method)."""
    return scope["type"] == "http" and route_path(scope) == MESSAGE_STATUS_PATH


# A kept status's answer: no body, so no Content-Length (RFC 9110 8.6, as Starlette's Response
# leaves it out) nor Content-Type. Not changed by anyone it is sent to (uvicorn copies it).
_NO_CONTENT_HEADERS = list(SECURITY_HEADERS)


def response_head(status: int, text: str, headers: Headers = ()) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """An answer's headers (after the server's own, e.g. Date) and body."""
    if status == 204 and not headers:
        return _NO_CONTENT_HEADERS, b""
    body = text.encode("utf-8")
    head = [*headers] if status == 204 else [(b"content-length", str(len(body)).encode()), *headers]
    if body:
        head.append((b"content-type", b"text/plain; charset=utf-8"))
    head += SECURITY_HEADERS
    return head, body


async def _reply(send: Send, status: int, text: str, headers: Headers = ()) -> None:
    head, body = response_head(status, text, headers)
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


__all__ = [
    "MESSAGE_STATUSES",
    "MESSAGE_STATUS_PATH",
    "NO_CONTENT",
    "MessageStatusCallbacks",
    "head_answer",
    "is_status_callback",
    "not_kept",
    "parse_status",
    "response_head",
    "signed_status_form",
    "status_report",
]
