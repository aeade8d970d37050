"""Twilio's side of message status callbacks: what a sending system's messages report to us.

A business's sending system creates messages with StatusCallback pointing at
`/twilio/message-status`; Twilio then posts each status change, signed like every webhook.
This plays that part for the tests, `bench/` and anyone trying it, as unkindly as Twilio:
- no callback for a message's initial status: `queued` without a Messaging Service, and
  with one the initial `accepted` (then `queued` is reported)
  (https://www.twilio.com/docs/messaging/guides/outbound-message-status-in-status-callbacks);
- the callback carries a subset of the message's parameters plus MessageStatus, and ErrorCode
  only for `failed` and `undelivered`; on WhatsApp To and From carry `whatsapp:` and
  ChannelPrefix, ChannelInstallSid and ChannelToAddress come too
  (https://www.twilio.com/docs/messaging/guides/track-outbound-message-status);
- a callback is not retried unless the URL's connection overrides say so: a fragment such as
  `#rc=3&rp=5xx` (retry count, retry policy `4xx`, `5xx`, `ct`, `rt` or `all`); the default
  policy `ct` retries only a connection that could not be made
  (https://www.twilio.com/docs/usage/webhooks/webhooks-connection-overrides). The fragment is
  never sent, and the URL is signed without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, urldefrag

import httpx

from ivr.twilio.emulator import TwilioEmulator, new_sid

Outcome = Literal["sent", "delivered", "read", "failed", "undelivered"]
# A WhatsApp template sent outside the customer's 24-hour window without an approved template.
DEFAULT_FAILED_ERROR = "63016"
DEFAULT_UNDELIVERED_ERROR = "30003"  # Unreachable destination handset
_MAX_RETRIES = 5  # "rc": 0 to 5


@dataclass(frozen=True)
class ConnectionOverrides:
    """The retries a status callback URL's fragment asks for (only those matter here)."""

    retries: int = 1
    policy: frozenset[str] = frozenset({"ct"})

    @classmethod
    def from_url(cls, url: str) -> tuple[str, ConnectionOverrides]:
        """The URL without its fragment, and the overrides the fragment sets."""
        bare, fragment = urldefrag(url)
        values = dict(parse_qsl(fragment))
        retries = int(values["rc"]) if values.get("rc", "").isdigit() else 1
        policy = frozenset(p for p in values.get("rp", "ct").split(",") if p)
        return bare, cls(min(retries, _MAX_RETRIES), policy)

    def retry_after(self, status_code: int | None) -> bool:
        """Would Twilio try again after this answer (None: no connection was made)?"""
        if "all" in self.policy:
            return status_code is None or status_code >= 400
        if status_code is None:
            return "ct" in self.policy
        return f"{status_code // 100}xx" in self.policy


@dataclass
class SentMessage:
    """A message whose status callbacks were sent, and what the service answered to each."""

    sid: str
    to: str
    from_: str
    statuses: list[str]
    answers: list[int | None] = field(default_factory=list)  # every attempt, retries included


def statuses_for(outcome: Outcome, messaging_service: bool) -> list[str]:
    """The statuses Twilio reports, in order, for a message that ends in `outcome`."""
    first = ["queued"] if messaging_service else []
    if outcome == "failed":
        return [*first, "failed"]
    path = ["sent", "delivered", "read"]
    if outcome == "undelivered":
        return [*first, "sent", "undelivered"]
    return [*first, *path[: path.index(outcome) + 1]]


class MessageStatusEmulator:
    """Sends the status callbacks of messages a business sends, signed by `twilio`."""

    def __init__(
        self,
        twilio: TwilioEmulator,
        callback_url: str = "/twilio/message-status",
        *,
        messaging_service_sid: str | None = None,
    ) -> None:
        self.twilio = twilio
        self.callback_url = callback_url
        self.messaging_service_sid = messaging_service_sid

    def params(
        self, sid: str, status: str, to: str, from_: str, error_code: str | None = None
    ) -> dict[str, str]:
        """A status callback's parameters as Twilio sends them."""
        params = {
            "AccountSid": self.twilio.account_sid,
            "ApiVersion": "2010-04-01",
            "From": from_,
            "MessageSid": sid,
            "MessageStatus": status,
            "SmsSid": sid,
            "SmsStatus": status,
            "To": to,
        }
        if self.messaging_service_sid is not None:
            params["MessagingServiceSid"] = self.messaging_service_sid
        if to.startswith("whatsapp:"):
            params |= {
                "ChannelPrefix": "whatsapp",
                "ChannelInstallSid": "XE" + sid[2:],
                "ChannelToAddress": to.removeprefix("whatsapp:")[:-7] + "XXXXXXX",
            }
        if status in ("failed", "undelivered") and error_code is not None:
            params["ErrorCode"] = error_code
        return params

    async def post_status(self, params: dict[str, str]) -> list[int | None]:
        """POST one callback, retried as the URL's connection overrides ask; each answer."""
        url = self.twilio.url(self.callback_url) if self.callback_url.startswith("/") else self.callback_url
        bare, overrides = ConnectionOverrides.from_url(url)
        answers: list[int | None] = []
        for _ in range(1 + overrides.retries):
            try:
                response = await self.twilio.post(bare, params)
                answers.append(response.status_code)
            except httpx.TransportError:
                answers.append(None)
            if not overrides.retry_after(answers[-1]):
                break
        return answers

    async def send(
        self,
        to: str,
        from_: str,
        outcome: Outcome = "read",
        *,
        error_code: str | None = None,
        sid: str | None = None,
        statuses: Sequence[str] | None = None,
    ) -> SentMessage:
        """Report a message's statuses one after another, as Twilio would over its life."""
        if error_code is None and outcome in ("failed", "undelivered"):
            error_code = DEFAULT_FAILED_ERROR if outcome == "failed" else DEFAULT_UNDELIVERED_ERROR
        message = SentMessage(
            sid or new_sid("SM"),
            to,
            from_,
            list(statuses or statuses_for(outcome, self.messaging_service_sid is not None)),
        )
        for status in message.statuses:
            message.answers += await self.post_status(self.params(message.sid, status, to, from_, error_code))
        return message
