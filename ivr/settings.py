"""Configuration read once from the environment at start-up and passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_DATABASE_URL = "sqlite:///ivr.db"


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    twilio_auth_token: str | None = None
    public_url: str | None = None
    secret_key: str | None = None
    webhook_retry_seconds: float = 2.0
    try_phone: bool = True  # IVR_TRY=off: no browser phone at /try
    session_idle_seconds: float = 30 * 60

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
        )


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
