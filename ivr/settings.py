"""Configuration read once from the environment at start-up and passed down."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ivr.phone_input import check_region

DEFAULT_DATABASE_URL = "sqlite:///ivr.db"
DEFAULT_TWILIO_API_URL = "https://api.twilio.com"


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    twilio_auth_token: str | None = None
    public_url: str | None = None
    secret_key: str | None = None
    webhook_retry_seconds: float = 2.0
    try_phone: bool = True  # IVR_TRY=off: no browser phone at /try
    session_idle_seconds: float = 30 * 60
    # The Twilio account (see README "Going live"): whose webhooks are taken, whose REST API is called.
    twilio_account_sid: str | None = None
    twilio_auth_token_secondary: str | None = None
    twilio_subaccount_tokens: tuple[tuple[str, str], ...] = ()  # (AccountSid, token)
    twilio_shared_keys: tuple[tuple[str, str], ...] = ()  # (key id, secret)
    twilio_api_key: str | None = None
    twilio_api_secret: str | None = None
    twilio_api_url: str = DEFAULT_TWILIO_API_URL
    default_region: str | None = None  # IVR_DEFAULT_REGION: country of typed numbers without +
    # IVR_RECORDINGS_SYNC_SECONDS: how often `ivr serve` asks Twilio for recordings whose callback
    # never came (0: never); IVR_RECORDINGS_DELETE_AT_TWILIO=1: delete each recording at Twilio
    # once it is archived (docs/recordings-retention.md).
    recordings_sync_seconds: float = 300.0
    recordings_delete_at_twilio: bool = False
    # IVR_RECORDINGS_URL: the recording archive (file:///path or s3://bucket/prefix); None: the
    # default beside the database (ivr.recordings.archive.recordings_url).
    recordings_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        public_url = (env.get("IVR_PUBLIC_URL") or "").strip().rstrip("/") or None
        if public_url is not None and not public_url.startswith(("http://", "https://")):
            raise ValueError(f"IVR_PUBLIC_URL {public_url!r} must start with http:// or https://")
        return cls(
            database_url=(env.get("IVR_DATABASE_URL") or "").strip() or DEFAULT_DATABASE_URL,
            twilio_auth_token=(env.get("TWILIO_AUTH_TOKEN") or "").strip() or None,
            public_url=public_url,
            secret_key=_secret_key(env),
            webhook_retry_seconds=_positive_float(env, "IVR_WEBHOOK_RETRY_SECONDS", 2.0),
            try_phone=_on_off(env, "IVR_TRY", True),
            session_idle_seconds=60 * _positive_float(env, "IVR_SESSION_IDLE_MINUTES", 30.0),
            default_region=_default_region(env),
            recordings_sync_seconds=_sync_seconds(env),
            recordings_delete_at_twilio=_zero_one(env, "IVR_RECORDINGS_DELETE_AT_TWILIO"),
            recordings_url=_recordings_url(env),
            **_twilio_account(env),
        )


def _recordings_url(env: Mapping[str, str]) -> str | None:
    raw = (env.get("IVR_RECORDINGS_URL") or "").strip().rstrip("/")
    if not raw:
        return None
    if raw.startswith("file:///"):
        return raw
    if raw.startswith("s3://") and len(raw) > len("s3://") and not raw[5:].startswith("/"):
        return raw
    raise ValueError(f"IVR_RECORDINGS_URL {raw[:80]!r} must be file:///absolute/path or s3://bucket/prefix")


def _default_region(env: Mapping[str, str]) -> str | None:
    raw = (env.get("IVR_DEFAULT_REGION") or "").strip()
    try:
        return check_region(raw) if raw else None
    except ValueError as exc:
        raise ValueError(f"IVR_DEFAULT_REGION: {exc}") from None


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be more than 0, not {raw!r}")
    return value


def _secret_key(env: Mapping[str, str]) -> str | None:
    key = (env.get("IVR_SECRET_KEY") or "").strip() or None
    if key is not None and len(key) < 32:
        raise ValueError(
            "IVR_SECRET_KEY must be at least 32 characters (e.g. `python -c 'import secrets;"
            " print(secrets.token_urlsafe(32))'`)"
        )
    return key


def _on_off(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw not in ("on", "off"):
        raise ValueError(f"{name} must be on or off, not {raw!r}")
    return raw == "on"


_SID = re.compile("[0-9a-f]{32}")


def _sid(name: str, raw: str, prefix: str) -> str:
    if len(raw) != 34 or not raw.startswith(prefix) or _SID.fullmatch(raw, 2) is None:
        shown = raw[:6] + "..." if len(raw) > 6 else raw
        raise ValueError(f"{name}: {shown!r} is not a Twilio SID ({prefix} and 32 lower-case hex digits)")
    return raw


def _pairs(env: Mapping[str, str], name: str, what: str) -> list[tuple[str, str]]:
    """`ID=secret,ID=secret` as pairs; an error names the variable and the entry, never a secret."""
    pairs: list[tuple[str, str]] = []
    for n, entry in enumerate((env.get(name) or "").split(","), start=1):
        if not entry.strip():
            continue
        ident, separator, secret = (part.strip() for part in entry.partition("="))
        if not separator or not ident or not secret or any(c.isspace() for c in ident + secret):
            raise ValueError(f"{name}: entry {n} ({ident[:40]!r}) is not {what}=secret")
        if ident in dict(pairs):
            raise ValueError(f"{name}: {ident[:40]!r} is listed twice")
        pairs.append((ident, secret))
    return pairs


def _twilio_account(env: Mapping[str, str]) -> dict[str, Any]:
    """TWILIO_ACCOUNT_SID and the secrets beside it, checked now: a bad value stops the start."""
    account_sid = (env.get("TWILIO_ACCOUNT_SID") or "").strip() or None
    if account_sid is not None:
        _sid("TWILIO_ACCOUNT_SID", account_sid, "AC")
    subaccounts = _pairs(env, "TWILIO_SUBACCOUNT_TOKENS", "AC...")
    for sid, _ in subaccounts:
        _sid("TWILIO_SUBACCOUNT_TOKENS", sid, "AC")
        if sid == account_sid:
            raise ValueError(f"TWILIO_SUBACCOUNT_TOKENS: {sid} is TWILIO_ACCOUNT_SID, the main account")
    api_key = (env.get("TWILIO_API_KEY") or "").strip() or None
    api_secret = (env.get("TWILIO_API_SECRET") or "").strip() or None
    if api_key is not None:
        _sid("TWILIO_API_KEY", api_key, "SK")
    if (api_key is None) != (api_secret is None):
        raise ValueError("TWILIO_API_KEY and TWILIO_API_SECRET go together: set both or neither")
    api_url = (env.get("IVR_TWILIO_API_URL") or "").strip().rstrip("/") or DEFAULT_TWILIO_API_URL
    if not api_url.startswith(("http://", "https://")):
        raise ValueError(f"IVR_TWILIO_API_URL {api_url!r} must start with http:// or https://")
    return {
        "twilio_account_sid": account_sid,
        "twilio_auth_token_secondary": (env.get("TWILIO_AUTH_TOKEN_SECONDARY") or "").strip() or None,
        "twilio_subaccount_tokens": tuple(subaccounts),
        "twilio_shared_keys": tuple(_pairs(env, "TWILIO_SHARED_KEYS", "KEY_ID")),
        "twilio_api_key": api_key,
        "twilio_api_secret": api_secret,
        "twilio_api_url": api_url,
    }


def _sync_seconds(env: Mapping[str, str]) -> float:
    """IVR_RECORDINGS_SYNC_SECONDS: seconds between reconciliations in `ivr serve`, 0 for none."""
    raw = (env.get("IVR_RECORDINGS_SYNC_SECONDS") or "").strip()
    if not raw:
        return 300.0
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"IVR_RECORDINGS_SYNC_SECONDS must be a number, not {raw[:20]!r}") from None
    if not 0 <= value < 10**7:
        raise ValueError(f"IVR_RECORDINGS_SYNC_SECONDS must be 0 (off) or more, not {raw[:20]!r}")
    return value


def _zero_one(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "").strip()
    if raw not in ("", "0", "1"):
        raise ValueError(f"{name} must be 1 (on) or 0 (off), not {raw[:20]!r}")
    return raw == "1"
