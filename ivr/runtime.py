"""What a running app holds: settings, the open store, the secrets that may sign webhooks."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field
from functools import cached_property

from starlette.requests import Request
from twilio.request_validator import RequestValidator

from consent_store import ConsentStore
from ivr.passwords import CHECKS_AT_ONCE
from ivr.settings import Settings
from ivr.throttle import LoginThrottle
from ivr.twilio.catalog import Catalog
from ivr.twilio.signature import WebhookSecrets

LOG = logging.getLogger(__name__)

LOCAL_TOKEN_SETTING = "local_twilio_auth_token"
SESSION_SECRET_SETTING = "session_secret"


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    store: ConsentStore
    auth_token: str
    validator: RequestValidator
    local_token: bool = False
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    login_throttle: LoginThrottle = field(default_factory=LoginThrottle)
    password_checks: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(CHECKS_AT_ONCE))
    catalog: Catalog = field(init=False)
    webhook_secrets: WebhookSecrets = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "catalog", Catalog(self.store))
        object.__setattr__(
            self, "webhook_secrets", webhook_secrets_for(self.settings, self.auth_token, self.local_token)
        )

    @property
    def token_bytes(self) -> bytes:
        return self.auth_token.encode("utf-8")

    @cached_property
    def gather_state_key(self) -> bytes:
        """The key of the MAC in Gather states: derived from secret_key, never the key itself."""
        return hmac.new(self.secret_key.encode("utf-8"), b"gather-state", hashlib.sha256).digest()


def webhook_secrets_for(settings: Settings, token: str, local: bool) -> WebhookSecrets:
    """The secrets that may sign webhooks, per account (see ivr.twilio.signature)."""
    return WebhookSecrets.from_tokens(
        token,
        local=local,
        account_sid=settings.twilio_account_sid,
        secondary=settings.twilio_auth_token_secondary,
        subaccount_tokens=settings.twilio_subaccount_tokens,
        shared_keys=settings.twilio_shared_keys,
    )


async def auth_token_for(settings: Settings, store: ConsentStore) -> tuple[str, bool]:
    """TWILIO_AUTH_TOKEN, or the local token kept in the database (created once); True if local."""
    if settings.twilio_auth_token:
        return settings.twilio_auth_token, False
    return await store.setting_or_default(LOCAL_TOKEN_SETTING, secrets.token_hex(16)), True


async def start_runtime(settings: Settings, store: ConsentStore) -> Runtime:
    token, local = await auth_token_for(settings, store)
    if local:
        LOG.warning(
            "TWILIO_AUTH_TOKEN is not set: webhooks are checked against a local token kept in the "
            "database, so requests from real Twilio will be refused (403). Set TWILIO_AUTH_TOKEN "
            "to your account's Auth Token to take real calls."
        )
    runtime = Runtime(
        settings=settings,
        store=store,
        auth_token=token,
        validator=RequestValidator(token),
        local_token=local,
        secret_key=await secret_key_for(settings, store),
    )
    secrets_ = runtime.webhook_secrets
    if secrets_.account_sid or secrets_.subaccounts or secrets_.shared_keys:
        LOG.info(
            "webhooks taken for AccountSid %s (%s); subaccounts: %s; shared keys: %s",
            secrets_.account_sid or "any",
            ", ".join(s.name for s in secrets_.main),
            ", ".join(secrets_.subaccounts) or "none",
            ", ".join(secrets_.shared_keys) or "none",
        )
    return runtime


async def secret_key_for(settings: Settings, store: ConsentStore) -> str:
    """IVR_SECRET_KEY, or a random key created once and kept in the database (never empty)."""
    if settings.secret_key:
        return settings.secret_key
    return await store.setting_or_default(SESSION_SECRET_SETTING, secrets.token_urlsafe(32))


def request_runtime(request: Request) -> Runtime:
    """The Runtime the app was started with (app.state.runtime), for a request's handler."""
    runtime: Runtime = request.app.state.runtime
    return runtime
