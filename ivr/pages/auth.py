"""Signing in to the web pages: server-side sessions, signed cookies, CSRF, login rate limit.

A session is a random id kept (as its SHA-256) in the store with its user, its start and when it
was last used; the cookie (HttpOnly, SameSite=Strict, Secure behind HTTPS) carries that id and a
CSRF token, signed with the service's secret key. A session ends at sign-out, after
SESSION_SECONDS, after `Settings.session_idle_seconds` unused, and when its user's password
changes, the user is disabled or `ivr user sessions end NAME` runs: a copied cookie dies with
it, on every process. Every form POST must echo the CSRF token. Unauthenticated requests never
see data.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import wraps
from typing import Any
from urllib.parse import quote

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from consent_store.events import Role
from ivr.exceptions import BadUserName
from ivr.pages.web import templates
from ivr.passwords import hash_password, normal_user_name, password_matches_async
from ivr.runtime import request_runtime

__all__ = ["SessionUser", "current_user", "hash_password", "requires", "template_user"]

LOG = logging.getLogger(__name__)

SESSION_COOKIE = "ivr_session"
LOGIN_CSRF_COOKIE = "ivr_login_csrf"
SESSION_SECONDS = 8 * 3600
# last_seen is written at most this often per session (a page view is not a write each time).
TOUCH_EVERY_SECONDS = 60


@dataclass(frozen=True)
class SessionUser:
    name: str
    role: Role
    csrf: str
    businesses: tuple[str, ...] | None = None  # None: every business

    @property
    def can_edit(self) -> bool:
        """Managers and admins change what callers hear."""
        return self.role in ("admin", "manager")

    def may_see(self, business: str) -> bool:
        return self.businesses is None or business in self.businesses

    def visible(self, businesses: Iterable[str]) -> list[str]:
        return [b for b in businesses if self.may_see(b)]


def _serializer(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(request_runtime(request).secret_key, salt="ivr-session")


def _secure(request: Request) -> bool:
    public = request_runtime(request).settings.public_url
    return (public or str(request.url)).startswith("https://")


def _session_key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _cookie_session(request: Request) -> tuple[str, str] | None:
    """(session id, CSRF token) from a cookie signed with this service's key, else None."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie or len(cookie) > 512:
        return None
    try:
        data = _serializer(request).loads(cookie, max_age=SESSION_SECONDS)
    except BadSignature:
        return None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("sid"), str)
        or not isinstance(data.get("csrf"), str)
    ):
        return None
    return data["sid"], data["csrf"]


async def current_user(request: Request) -> SessionUser | None:
    """The signed-in user: a live session of an enabled user, re-read from the store each time."""
    found = _cookie_session(request)
    if found is None:
        return None
    session_id, csrf = found
    runtime = request_runtime(request)
    key = _session_key(session_id)
    session = await runtime.store.web_session(key)
    now = int(time.time())
    if (
        session is None
        or session.ended_at is not None
        or now - session.created_at > SESSION_SECONDS
        or now - session.last_seen > runtime.settings.session_idle_seconds
    ):
        return None
    user = await runtime.store.get_user(session.user)
    if user is None or user.disabled:
        return None
    if now - session.last_seen >= TOUCH_EVERY_SECONDS:
        await runtime.store.touch_session(key, now)
    return SessionUser(user.name, user.role, csrf, user.businesses)


def csrf_ok(request: Request, user: SessionUser, submitted: str | None) -> bool:
    return submitted is not None and hmac.compare_digest(submitted, user.csrf)


Endpoint = Callable[[Request], Awaitable[Response]]


def requires(*roles: Role, api: bool = False) -> Callable[[Callable[..., Awaitable[Response]]], Endpoint]:
    """Only signed-in users with one of `roles`; POSTs must carry the session's CSRF token."""

    def decorate(endpoint: Callable[..., Awaitable[Response]]) -> Endpoint:
        @wraps(endpoint)
        async def guarded(request: Request) -> Response:
            user = await current_user(request)
            if user is None:
                if api:
                    return JSONResponse({"error": "sign in first"}, status_code=401)
                target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
                return RedirectResponse(f"/login?next={target}", status_code=303)
            if user.role not in roles and user.role != "admin":  # an admin may do everything
                return PlainTextResponse("Forbidden: your role cannot do this.", status_code=403)
            if request.method == "POST":
                submitted = request.headers.get("X-CSRF-Token")
                if submitted is None and not api:
                    submitted = str((await request.form()).get("csrf_token") or "") or None
                if not csrf_ok(request, user, submitted):
                    return PlainTextResponse(
                        "Forbidden: missing or wrong CSRF token; reload the page.", status_code=403
                    )
            return await endpoint(request, user)

        return guarded

    return decorate


def _safe_next(target: str | None) -> str:
    # Only local paths: never redirect a signed-in user to another site.
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return "/manage"


async def login_page(request: Request, error: str | None = None, status: int = 200) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = templates.TemplateResponse(
        request,
        "login.html",
        {"error": error, "next": _safe_next(request.query_params.get("next")), "csrf_token": token},
        status_code=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request), path="/login"
    )
    return response


async def login(request: Request) -> Response:
    runtime = request_runtime(request)
    form = await request.form()
    typed, password = str(form.get("name") or "")[:256], str(form.get("password") or "")
    cookie_token, form_token = request.cookies.get(LOGIN_CSRF_COOKIE), str(form.get("csrf_token") or "")
    if not cookie_token or not hmac.compare_digest(cookie_token, form_token):
        return await login_page(request, "Your sign-in form expired; please try again.", 403)
    try:
        name = normal_user_name(typed)
    except BadUserName:
        name = ""
    client = request.client.host if request.client else "unknown"
    verdict = runtime.login_throttle.check(name or typed, client)
    if verdict.refused:
        LOG.warning("sign-in refused: too many failures for this user from this address")
        return await login_page(request, "Too many failed sign-ins. Wait 15 minutes and try again.", 429)
    if verdict.delay_seconds:
        await asyncio.sleep(verdict.delay_seconds)
    user = await runtime.store.get_user(name) if name else None
    usable = user is not None and not user.disabled
    matches = await password_matches_async(
        user.password_hash if usable and user is not None else None, password, runtime.password_checks
    )
    if user is None or not usable or not matches:
        runtime.login_throttle.failed(name or typed, client)
        return await login_page(request, "Wrong user name or password.", 401)
    runtime.login_throttle.succeeded(name, client)
    session_id, now = secrets.token_urlsafe(32), int(time.time())
    await runtime.store.purge_sessions(before=now - SESSION_SECONDS)  # none of those can be used again
    await runtime.store.start_session(_session_key(session_id), user.name, now)
    cookie = _serializer(request).dumps({"sid": session_id, "csrf": secrets.token_urlsafe(24)})
    response = RedirectResponse(_safe_next(str(form.get("next") or "")), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    LOG.info("user %s signed in as %s", user.name, user.role)
    return response


@requires("admin", "manager", "auditor")
async def logout(request: Request, user: SessionUser) -> Response:
    found = _cookie_session(request)
    if found is not None:
        await request_runtime(request).store.end_session(_session_key(found[0]), int(time.time()))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def login_dispatch(request: Request) -> Response:
    return await (login(request) if request.method == "POST" else login_page(request))


def template_user(user: SessionUser | None) -> dict[str, Any]:
    return {"user": user, "csrf_token": user.csrf if user else ""}


routes = [
    Route("/login", login_dispatch, methods=["GET", "POST"]),
    Route("/logout", logout, methods=["POST"]),
]
