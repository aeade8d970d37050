"""Twilio's side of incoming WhatsApp and SMS messages: a person texting a business's number.

Plays Twilio's part for the tests, `ivr message` and the /try page, as unkindly as Twilio
(https://www.twilio.com/docs/messaging/guides/webhook-request):
- a form POST signed over the URL and every parameter, as for calls (ivr/twilio/emulator.py);
- WhatsApp addresses are `whatsapp:+E164` in both From and To; WhatsApp posts carry
  ProfileName, WaId (the sender's number without '+'), MessageType and ReferralNumMedia,
  and none of the From/To city, state, zip and country an SMS may carry;
- MessageSid is SM + 32 hex digits (MM with media), repeated as SmsMessageSid and SmsSid;
  SmsStatus is `received`, Body is always sent (empty for a media-only message), NumMedia
  and NumSegments as strings; MessagingServiceSid only when the number is in a Messaging
  Service; optional parameters are absent, never empty;
- the reply: each <Message> of a 2xx TwiML answer is sent back to the sender; an empty
  <Response/> sends nothing; a text/plain answer is sent back as it is; a non-2xx answer,
  another Content-Type (error 12300, https://www.twilio.com/docs/errors/12300) or a body that
  is not TwiML (12100) sends nothing, and is not retried unless the URL's connection
  overrides ask (not emulated here).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from ivr.twilio.emulator import TwilioEmulator, new_sid

MESSAGING_PATH = "/twilio/messaging"
WHATSAPP = "whatsapp:"


@dataclass(frozen=True)
class MessageReply:
    """What Twilio did with the service's answer to one incoming message."""

    message_sid: str
    status_code: int
    replies: tuple[str, ...]  # the bodies sent back to the sender, in order
    problem: str | None = None  # why nothing was sent back, when the answer was not usable TwiML

    @property
    def text(self) -> str:
        return "\n".join(self.replies)


def message_params(
    account_sid: str,
    message_sid: str,
    to: str,
    from_: str,
    body: str,
    *,
    whatsapp: bool,
    profile_name: str | None = "Emulated Sender",
    from_country: str | None = "US",
    messaging_service_sid: str | None = None,
    num_media: int = 0,
) -> dict[str, str]:
    """The parameters Twilio posts for one incoming message (optional ones only when set)."""
    sender = (WHATSAPP + from_) if whatsapp else from_
    params = {
        "ToCountry": None if whatsapp else from_country,
        "SmsMessageSid": message_sid,
        "NumMedia": str(num_media),
        "ProfileName": profile_name if whatsapp else None,
        "MessageType": "text" if whatsapp and not num_media else ("image" if whatsapp else None),
        "SmsSid": message_sid,
        "WaId": from_.removeprefix("+") if whatsapp else None,
        "SmsStatus": "received",
        "Body": body,
        "FromCountry": None if whatsapp else from_country,
        "To": (WHATSAPP + to) if whatsapp else to,
        "NumSegments": "1",
        "ReferralNumMedia": "0" if whatsapp else None,
        "MessageSid": message_sid,
        "AccountSid": account_sid,
        "MessagingServiceSid": messaging_service_sid,
        "From": sender,
        "ApiVersion": "2010-04-01",
    }
    return {name: value for name, value in params.items() if value is not None}


def replies_of(status_code: int, content_type: str, text: str) -> tuple[tuple[str, ...], str | None]:
    """The messages Twilio sends back for an answer, and why none when it sends none."""
    if not 200 <= status_code < 300:
        return (), f"HTTP {status_code} (Twilio error 11200: nothing sent back)"
    if not text.strip():
        return (), None
    if content_type.startswith("text/plain"):
        return (text,), None  # Twilio sends a plain-text answer back as the message itself
    if "xml" not in content_type and not content_type.startswith("text/html"):
        return (), f"Content-Type {content_type or '(none)'}: Twilio error 12300, nothing sent back"
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        return (), f"invalid TwiML ({exc}): Twilio error 12100, nothing sent back"
    if root.tag != "Response":
        return (), f"TwiML root is <{root.tag}>, not <Response>: Twilio error 12100"
    bodies = []
    for verb in root:
        if verb.tag != "Message":
            return (), f"<{verb.tag}> is not a messaging verb: Twilio error 12100"
        body = verb.find("Body")
        bodies.append((body.text if body is not None else verb.text) or "")
    return tuple(bodies), None


class MessageEmulator:
    """Sends incoming messages to one service as Twilio does, with the call emulator's signing."""

    def __init__(self, twilio: TwilioEmulator, path: str = MESSAGING_PATH) -> None:
        self.twilio = twilio
        self.path = path

    def params(
        self, to: str, from_: str, body: str, *, whatsapp: bool = True, message_sid: str | None = None
    ) -> dict[str, str]:
        return message_params(
            self.twilio.account_sid, message_sid or new_sid("SM"), to, from_, body, whatsapp=whatsapp
        )

    async def send(
        self,
        to: str,
        from_: str,
        body: str,
        *,
        whatsapp: bool = True,
        message_sid: str | None = None,
        extra_params: dict[str, str] | None = None,
    ) -> MessageReply:
        """One incoming message from `from_` to `to` (E.164, without `whatsapp:`), and Twilio's
        reading of the answer. The same `message_sid` again is a retry of the same message."""
        params = self.params(to, from_, body, whatsapp=whatsapp, message_sid=message_sid)
        params |= extra_params or {}
        response = await self.twilio.post(self.path, params)
        replies, problem = replies_of(
            response.status_code, response.headers.get("content-type", ""), response.text
        )
        return MessageReply(params["MessageSid"], response.status_code, replies, problem)
