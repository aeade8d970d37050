"""Signing in to the web pages: argon2 passwords, signed session cookies, CSRF, login rate limit.

Sessions are itsdangerous-signed cookies (HttpOnly, SameSite=Strict, Secure
behind HTTPS) carrying the user name, role and a CSRF token; every form POST
must echo that token. Unauthenticated requests never see data.
"""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any
from urllib.parse import quote

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from consent_store.events import Role
from ivr.runtime import Runtime
from ivr.web import templates

LOG = logging.getLogger(__name__)

SESSION_COOKIE = "ivr_session"
LOGIN_CSRF_COOKIE = "ivr_login_csrf"
SESSION_SECONDS = 8 * 3600

_hasher = PasswordHasher()


# A valid hash of a random password: checking it costs what a real check costs, so the time
# taken does not reveal whether a user name exists.
@functools.cache
def _dummy_hash() -> str:
    # Made on first need, not at import: it costs 64 MiB and 0.1 s that no CLI command needs.
    return _hasher.hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class SessionUser:
    name: str
    role: Role
    csrf: str


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _serializer(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(_runtime(request).secret_key, salt="ivr-session")


def _secure(request: Request) -> bool:
    public = _runtime(request).settings.public_url
    return (public or str(request.url)).startswith("https://")


async def current_user(request: Request) -> SessionUser | None:
    """The signed-in user, re-checked against the store (a disabled user is signed out)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    try:
        data = _serializer(request).loads(cookie, max_age=SESSION_SECONDS)
    except BadSignature:
        return None
    user = await _runtime(request).store.get_user(str(data.get("name")))
    if user is None or user.disabled or user.role != data.get("role"):
        return None
    return SessionUser(user.name, user.role, str(data["csrf"]))


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
            if user.role not in roles:
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
    runtime = _runtime(request)
    form = await request.form()
    name, password = str(form.get("name") or ""), str(form.get("password") or "")
    cookie_token, form_token = request.cookies.get(LOGIN_CSRF_COOKIE), str(form.get("csrf_token") or "")
    if not cookie_token or not hmac.compare_digest(cookie_token, form_token):
        return await login_page(request, "Your sign-in form expired; please try again.", 403)
    client = request.client.host if request.client else "unknown"
    keys = (f"user:{name}", f"address:{client}")
    if runtime.login_throttle.locked(*keys):
        LOG.warning("sign-in refused: too many failures for this user or address")
        return await login_page(request, "Too many failed sign-ins. Wait 15 minutes and try again.", 429)
    user = await runtime.store.get_user(name)
    if user is None or user.disabled or not password_matches(user.password_hash, password):
        if user is None:
            password_matches(_dummy_hash(), password)
        runtime.login_throttle.failed(*keys)
        return await login_page(request, "Wrong user name or password.", 401)
    runtime.login_throttle.succeeded(*keys)
    session = {"name": user.name, "role": user.role, "csrf": secrets.token_urlsafe(24)}
    response = RedirectResponse(_safe_next(str(form.get("next") or "")), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        _serializer(request).dumps(session),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    LOG.info("user %s signed in as %s", user.name, user.role)
    return response


@requires("manager", "auditor")
async def logout(request: Request, user: SessionUser) -> Response:
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
