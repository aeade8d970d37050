"""Telling businesses about opt-outs at once: a signed POST per opt-out, retried with backoff.

What is still to be sent is derived from the consent log itself (every opt-out
after a per-business cursor), so a crash between recording an opt-out and
sending it loses nothing: the next pass sends it. Deliveries to one business
are in order; a failing endpoint is retried with exponential backoff (capped at
one hour) and holds back later opt-outs of that business until it answers 2xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator

import httpx

from consent_store import ConsentStore, StoreError
from consent_store.events import OptOutNotice, OptOutWebhook
from ivr.background import running_task
from ivr.outbound_tls import tls_context

LOG = logging.getLogger(__name__)

POLL_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 3600.0
SIGNATURE_HEADER = "X-IVR-Signature"


# A webhook secret made by `ivr business webhook` is not kept: the store holds this prefix and a
# random nonce, and the secret is HMAC-SHA256(IVR_SECRET_KEY, business + nonce). With the key in
# the environment, a copy of the database alone does not give away the secrets.
DERIVED_PREFIX = "derived:"


def derived_secret(secret_key: str, business: str, nonce: str) -> str:
    message = f"opt-out-webhook\n{business}\n{nonce}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def signing_secret(stored: str, secret_key: str, business: str) -> str:
    """The secret to sign with: derived from what is stored, or (older rows) stored as it is."""
    if stored.startswith(DERIVED_PREFIX):
        return derived_secret(secret_key, business, stored.removeprefix(DERIVED_PREFIX))
    return stored


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body>`: receivers recompute and compare."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def payload(hook: OptOutWebhook, notice: OptOutNotice) -> bytes:
    return json.dumps(
        {
            "type": "opt_out",
            "business": hook.business,
            "phone": notice.phone,
            "recorded_at": notice.recorded_at,
            "call_sid": notice.call_sid,
            "record_hash": notice.record_hash,
            "record": notice.seq,
            "channel": notice.channel,
        },
        separators=(",", ":"),
    ).encode()


class OptOutNotifier:
    """Runs beside the server; one pass every POLL_SECONDS."""

    def __init__(
        self,
        store: ConsentStore,
        client: httpx.AsyncClient,
        retry_base_seconds: float = 2.0,
        secret_key: str = "",
    ) -> None:
        self.store = store
        self.secret_key = secret_key
        self.client = client
        self.retry_base_seconds = retry_base_seconds
        self._not_before: dict[str, float] = {}

    async def run(self) -> None:
        while True:
            try:
                await self.deliver_due()
            except StoreError as exc:
                LOG.warning("opt-out webhooks paused: %s", exc)
            await asyncio.sleep(POLL_SECONDS)

    async def deliver_due(self) -> int:
        """Send what is due now; return how many opt-outs were delivered."""
        delivered = 0
        for hook in await self.store.opt_out_webhooks():
            if time.monotonic() < self._not_before.get(hook.business, 0.0):
                continue
            for notice in await self.store.opt_outs_after(hook.business, hook.cursor_seq):
                error = await self._post(hook, notice)
                if error is not None:
                    await self.store.opt_out_webhook_result(hook.business, None, error)
                    wait = min(self.retry_base_seconds * 2**hook.failures, MAX_BACKOFF_SECONDS)
                    self._not_before[hook.business] = time.monotonic() + wait
                    LOG.warning(
                        "opt-out webhook of %s failed (%s); retrying in %.0f s", hook.business, error, wait
                    )
                    break
                await self.store.opt_out_webhook_result(hook.business, notice.seq, None)
                delivered += 1
        return delivered

    async def _post(self, hook: OptOutWebhook, notice: OptOutNotice) -> str | None:
        body = payload(hook, notice)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(
                signing_secret(hook.secret, self.secret_key, hook.business), int(time.time()), body
            ),
        }
        try:
            response = await self.client.post(hook.url, content=body, headers=headers, timeout=10)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"


@contextlib.asynccontextmanager
async def running_notifier(
    store: ConsentStore, retry_base_seconds: float, secret_key: str
) -> AsyncIterator[None]:
    """Run the notifier for the life of the app."""
    async with httpx.AsyncClient(verify=tls_context()) as client:
        async with running_task(
            OptOutNotifier(store, client, retry_base_seconds, secret_key).run(), "opt-out-webhooks"
        ):
            yield
