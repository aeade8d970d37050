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
number or an ErrorCode that is not a number, 400 and nothing written. The status is kept
durably (one grouped commit, outside the hash chain) before the 204; if it cannot be, 503 (Twilio
retries only when the URL's connection overrides ask for it, e.g. `#rc=3&rp=5xx`).
"""

from __future__ import annotations

import dataclasses
import logging
import re

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from consent_store import StoreError
from consent_store.message_statuses import MessageChannel, MessageStatusReport, record_message_status
from consent_store.phone import is_e164, masked
from consent_store.writing import utc_now
from ivr.twilio.inbound import _bad_request, _forbidden, _from_twilio
from ivr.twilio.signature import twilio_sid_ok

LOG = logging.getLogger(__name__)

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
# An SMS sender may be an alphanumeric sender ID (up to 11 letters, digits and spaces).
_ALPHANUMERIC_SENDER = re.compile(r"[A-Za-z0-9 ]{1,11}")
_ERROR_CODE = re.compile(r"[0-9]{1,6}")


def _address(value: str) -> tuple[MessageChannel, str]:
    if value.startswith(WHATSAPP_PREFIX):
        return "whatsapp", value[len(WHATSAPP_PREFIX) :]
    return "sms", value


def parse_status(form: dict[str, str], received_at: str) -> MessageStatusReport | str:
    """The callback's report, or what is wrong with it (one sentence)."""
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
    )


async def message_status(request: Request) -> Response:
    """A message's status callback: keep it once, durably, then 204."""
    received_at = utc_now()
    runtime, _, form = await _from_twilio(request)
    if form is None:
        return _forbidden()
    parsed = parse_status(form, received_at)
    if isinstance(parsed, str):
        return _bad_request(parsed)
    business = None
    if parsed.channel == "whatsapp":  # a WhatsApp sender of the business (--whatsapp-number) first
        business = await runtime.catalog.business_for_whatsapp_sender(parsed.from_number)
    if business is None:
        business = await runtime.catalog.business_for_number(parsed.from_number)
    if business is None:
        LOG.info(
            "status %s of message %s from %s, not a business's number: kept without a business",
            parsed.status,
            parsed.message_sid,
            masked(parsed.from_number),
        )
    report = dataclasses.replace(parsed, business=business.name if business is not None else None)
    try:
        await record_message_status(runtime.store, report)
    except StoreError as exc:
        LOG.error("could not keep status %s of message %s: %s", parsed.status, parsed.message_sid, exc)
        return PlainTextResponse("Service unavailable: status not stored.", status_code=503)
    return Response(status_code=204)


__all__ = ["MESSAGE_STATUSES", "MESSAGE_STATUS_PATH", "message_status", "parse_status", "routes"]

# "Twilio sends status callback requests as HTTP POST requests" (the guide above): POST only.
routes = [Route(MESSAGE_STATUS_PATH, message_status, methods=["POST"])]
