"""/manage/users: admins create, disable and re-enable users, reset passwords and end sessions.

Everything here is what `ivr user ...` does, with the same rules (normalised names, strong
passwords, businesses that exist) and the same chained audit events, authored by the admin.
A new or reset password is made here, shown once, and never stored but as its argon2 hash.
"""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from consent_store import StoreError
from consent_store.events import ROLES
from ivr.exceptions import BadUserName
from ivr.pages.auth import SessionUser, requires, template_user
from ivr.pages.web import templates
from ivr.passwords import hash_password, normal_user_name
from ivr.runtime import request_runtime

# 96 random bits as 16 URL-safe characters: far beyond what zxcvbn asks, and easy to copy.
GENERATED_PASSWORD_BYTES = 12


def new_password() -> str:
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)


async def _page(
    request: Request,
    user: SessionUser,
    *,
    message: str | None = None,
    error: str | None = None,
    shown_password: tuple[str, str] | None = None,
    status: int = 200,
) -> Response:
    store = request_runtime(request).store
    return templates.TemplateResponse(
        request,
        "manage_users.html",
        {
            "people": await store.list_users(),
            "businesses": await store.list_businesses(),
            "roles": ROLES,
            "message": message,
            "error": error,
            "shown_password": shown_password,
            **template_user(user),
        },
        status_code=status,
    )


@requires("admin")
async def users_page(request: Request, user: SessionUser) -> Response:
    return await _page(request, user)


@requires("admin")
async def create_user(request: Request, user: SessionUser) -> Response:
    form = await request.form()
    role = str(form.get("role") or "")
    chosen = [str(b) for b in form.getlist("business")]
    try:
        name = normal_user_name(str(form.get("name") or "")[:256])
    except BadUserName as exc:
        return await _page(request, user, error=f"User name: {exc}.", status=400)
    if role not in ROLES:
        return await _page(request, user, error="Choose a role: admin, manager or auditor.", status=400)
    if role == "admin" and chosen:
        return await _page(request, user, error="An admin manages every business: tick none.", status=400)
    password = new_password()
    try:
        await request_runtime(request).store.add_user(
            name,
            role,
            hash_password(password),
            author=user.name,
            businesses=chosen or None,
        )
    except StoreError as exc:
        return await _page(request, user, error=str(exc), status=400)
    return await _page(
        request, user, message=f"Created {role} {name}.", shown_password=(name, password), status=201
    )


@requires("admin")
async def change_user(request: Request, user: SessionUser) -> Response:
    """Disable, enable, reset the password of, or end the sessions of a user."""
    form = await request.form()
    name, change = str(form.get("name") or ""), str(form.get("change") or "")
    store = request_runtime(request).store
    if await store.get_user(name) is None:
        return PlainTextResponse(f"No user named {name!r}.", status_code=404)
    if name == user.name and change == "disable":
        return await _page(request, user, error="You cannot disable yourself.", status=400)
    shown = None
    if change == "disable":
        await store.set_user_disabled(name, True, author=user.name)
        message = f"Disabled {name}; their sessions have ended."
    elif change == "enable":
        await store.set_user_disabled(name, False, author=user.name)
        message = f"Enabled {name}."
    elif change == "reset":
        password = new_password()
        await store.set_password(name, hash_password(password), author=user.name)
        message, shown = f"New password for {name}; their sessions have ended.", (name, password)
    elif change == "end_sessions":
        await store.end_user_sessions(name, author=user.name)
        message = f"Every session of {name} has ended."
    else:
        return await _page(request, user, error=f"Unknown change {change[:40]!r}.", status=400)
    return await _page(request, user, message=message, shown_password=shown)


routes = [
    Route("/manage/users", users_page, methods=["GET"]),
    Route("/manage/users", create_user, methods=["POST"]),
    Route("/manage/users/change", change_user, methods=["POST"]),
]
