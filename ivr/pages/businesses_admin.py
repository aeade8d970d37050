"""Businesses from the web: /manage/businesses (admins create them) and /manage/business (one business).

What `ivr business add` does, through the same code (ivr/businesses.py: the default scripts
checked by the policy linter before anything is written), with the same chained audit events,
authored by the signed-in user. Who may do what:

- admins create businesses, add or remove numbers and add locales: numbers decide whose consent
  a call records, so they are not a manager's to move;
- managers (of that business, or of every business) change the message types (the existing
  /manage/message-types) and the promised frequency of each locale;
- auditors and managers see the business page of the businesses they may see.

Every refusal is a sentence on the page (status 4xx) and nothing is written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from consent_store import Business, ConsentStore, StoreError
from ivr.businesses import (
    add_business,
    add_locale,
    with_frequency,
)
from ivr.exceptions import FormRefused, InvalidBusiness, NotAPhoneNumber, ScriptRejected
from ivr.pages.auth import SessionUser, requires, template_user
from ivr.pages.web import templates
from ivr.phone_input import normalise_typed_phone
from ivr.runtime import request_runtime
from ivr.scripts_admin import publish_checked
from voice_scripts import offered_locales, parse_script
from voice_scripts.exceptions import ScriptError

# A form field longer than this is someone else's data, not a business detail: refused.
MAX_FIELD_CHARACTERS = 2_000
MAX_LINES = 20


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    text = value if isinstance(value, str) else ""
    if len(text) > MAX_FIELD_CHARACTERS:
        raise FormRefused(f"{name.replace('_', ' ')}: at most {MAX_FIELD_CHARACTERS:,} characters")
    return text


def _lines(form: FormData, name: str) -> list[str]:
    lines = [line.strip() for line in _field(form, name).splitlines() if line.strip()]
    if len(lines) > MAX_LINES:
        raise FormRefused(f"{name.replace('_', ' ')}: at most {MAX_LINES} lines")
    return lines


def _numbers(request: Request, typed: list[str]) -> list[str]:
    """Typed numbers as E.164 (spaces, dashes, brackets; national with IVR_DEFAULT_REGION)."""
    region = request_runtime(request).settings.default_region
    try:
        return [normalise_typed_phone(number, region) for number in typed]
    except NotAPhoneNumber as exc:
        raise FormRefused(f"Number: {exc}") from exc


def _offered_locales() -> tuple[str, ...]:
    """The locales with a default script (voice_scripts/locales/); FormRefused naming a language
    file that cannot be read or misses an entry."""
    try:
        return offered_locales()
    except ScriptError as exc:
        raise FormRefused(str(exc)) from exc


def business_url(name: str) -> str:
    return f"/manage/business?{urlencode({'name': name})}"


async def _frequencies(request: Request, business: Business) -> dict[str, str]:
    """The frequency each locale's published script promises."""
    store, found = request_runtime(request).store, {}
    for locale in business.locales:
        try:
            found[locale] = parse_script((await store.script_version(business.name, locale)).text).frequency
        except (StoreError, ScriptError):
            found[locale] = ""
    return found


def _offered_or_refusal(error: str | None, status: int) -> tuple[tuple[str, ...], str | None, int]:
    """The locales to offer, and the page's error and status: a wrong language file offers none
    and the page says which (500), unless it already has an error to show."""
    try:
        return _offered_locales(), error, status
    except FormRefused as exc:
        return ((), error, status) if error is not None else ((), _sentence(exc), 500)


async def _list_page(
    request: Request,
    user: SessionUser,
    *,
    error: str | None = None,
    form: dict[str, object] | None = None,
    status: int = 200,
) -> Response:
    businesses = await request_runtime(request).store.list_businesses()
    offered, error, status = _offered_or_refusal(error, status)
    return templates.TemplateResponse(
        request,
        "manage_businesses.html",
        {
            "businesses": businesses,
            "default_locales": offered,
            "error": error,
            "form": form or {},
            **template_user(user),
        },
        status_code=status,
    )


async def _business_page(
    request: Request,
    user: SessionUser,
    business: Business,
    *,
    message: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    store = request_runtime(request).store
    drafts = [locale for locale in business.locales if await store.script_draft(business.name, locale)]
    offered, error, status = _offered_or_refusal(error, status)
    return templates.TemplateResponse(
        request,
        "manage_business.html",
        {
            "business": business,
            "frequencies": await _frequencies(request, business),
            "drafts": drafts,
            "new_locales": [loc for loc in offered if loc not in business.locales],
            "message": message,
            "error": error,
            **template_user(user),
        },
        status_code=status,
    )


async def _visible_business(request: Request, user: SessionUser, name: str) -> Business | None:
    """The business if it exists and the user may see it; None (one 404 for both) otherwise."""
    if not name or not user.may_see(name):
        return None
    try:
        return await request_runtime(request).store.get_business(name)
    except StoreError:
        return None


def _no_business(name: str) -> Response:
    return PlainTextResponse(f"No business named {name[:100]!r}.", status_code=404)


async def _posted_business(request: Request, user: SessionUser) -> tuple[FormData, Business] | Response:
    """The posted form and the business it names, or the 404 when the user may not see it."""
    form = await request.form()
    name = str(form.get("business") or "")
    business = await _visible_business(request, user, name)
    return _no_business(name) if business is None else (form, business)


@requires("admin")
async def businesses_page(request: Request, user: SessionUser) -> Response:
    return await _list_page(request, user)


@requires("admin")
async def create_business(request: Request, user: SessionUser) -> Response:
    form = await request.form()
    locales = [str(loc) for loc in form.getlist("locale")]
    kept: dict[str, object] = {
        key: str(form.get(key) or "")[:MAX_FIELD_CHARACTERS]
        for key in ("name", "numbers", "message_types", "frequency")
    }
    kept["locales"] = locales
    try:
        offered = _offered_locales()
        if any(loc not in offered for loc in locales):
            raise FormRefused(f"Locales: choose from {', '.join(offered)}")
        if not locales:
            raise FormRefused("Locales: tick at least one language callers hear")
        name = _field(form, "name")
        numbers = _numbers(request, _lines(form, "numbers"))
        message_types = _lines(form, "message_types")
        frequency = _field(form, "frequency").strip() or None
        created = await add_business(
            request_runtime(request).store,
            name,
            numbers,
            message_types,
            locales,
            author=user.name,
            frequency=frequency,
        )
    except (FormRefused, InvalidBusiness, StoreError) as exc:
        return await _list_page(request, user, error=_sentence(exc), form=kept, status=400)
    request_runtime(request).catalog.invalidate()
    return RedirectResponse(business_url(created.name) + "&created=1", status_code=303)


def _sentence(exc: Exception) -> str:
    text = str(exc)
    text = text[:1].upper() + text[1:]
    return text if text.endswith(".") else text + "."


@requires("manager", "auditor")
async def business_page(request: Request, user: SessionUser) -> Response:
    name = request.query_params.get("name", "")
    business = await _visible_business(request, user, name)
    if business is None:
        return _no_business(name)
    created = request.query_params.get("created") == "1"
    return await _business_page(
        request, user, business, message=f"Created {business.name}." if created else None
    )


BusinessChange = Callable[[FormData, Business, ConsentStore], Awaitable[str]]


async def _change_business(request: Request, user: SessionUser, change: BusinessChange) -> Response:
    """Apply `change` to the business the form names and show its page with the change's message.

    404 when the user may not see that business; a refusal is the page with its sentence and
    status 400 (422 when the linter rejects a script) and nothing written. After a change the
    call catalog is invalidated, so the next call hears it.
    """
    posted = await _posted_business(request, user)
    if isinstance(posted, Response):
        return posted
    form, business = posted
    store = request_runtime(request).store
    try:
        message = await change(form, business, store)
    except ScriptRejected as exc:
        problem = exc.problems[0]
        return await _business_page(request, user, business, error=f"Not published: {problem}", status=422)
    except (FormRefused, StoreError, ValueError) as exc:  # InvalidBusiness is a ValueError
        return await _business_page(request, user, business, error=_sentence(exc), status=400)
    request_runtime(request).catalog.invalidate()
    business = await store.get_business(business.name)
    return await _business_page(request, user, business, message=message)


@requires("admin")
async def change_numbers(request: Request, user: SessionUser) -> Response:
    async def change(form: FormData, business: Business, store: ConsentStore) -> str:
        kind = str(form.get("change") or "")
        if kind == "add":
            number = _numbers(request, [_field(form, "number")])[0]
            await store.add_number(business.name, number, user.name)
            return f"Calls to {number} now reach {business.name}."
        if kind == "remove":
            number = _field(form, "number")
            await store.remove_number(business.name, number, user.name)
            return f"Calls to {number} no longer reach {business.name}."
        raise FormRefused(f"Unknown change {kind[:40]!r}")

    return await _change_business(request, user, change)


@requires("admin")
async def new_locale(request: Request, user: SessionUser) -> Response:
    async def change(form: FormData, business: Business, store: ConsentStore) -> str:
        locale = str(form.get("locale") or "")
        offered = _offered_locales()
        if locale not in offered:
            raise FormRefused(f"Locale: choose from {', '.join(offered)}")
        await add_locale(store, business, locale, user.name)
        return f"Added {locale}: its default script is published as version 1."

    return await _change_business(request, user, change)


@requires("manager")
async def change_frequency(request: Request, user: SessionUser) -> Response:
    """Publish each locale's script again with the new promised frequency, checked by the linter."""

    async def change(form: FormData, business: Business, store: ConsentStore) -> str:
        locale = str(form.get("locale") or "")
        if locale not in business.locales:
            raise FormRefused(f"{business.name} has no {locale[:20]!r} script")
        if await store.script_draft(business.name, locale) is not None:
            raise FormRefused(
                f"the {locale} script has an unpublished draft: change the frequency in the script "
                "editor, so the draft is not lost"
            )
        published = await store.script_version(business.name, locale)
        text = with_frequency(published.text, _field(form, "frequency"))
        if text == published.text:
            return "The frequency is unchanged."
        version = await publish_checked(store, business, locale, text, user.name, "frequency changed")
        return f"Published {locale} version {version.version}: callers hear the new frequency now."

    return await _change_business(request, user, change)


routes = [
    Route("/manage/businesses", businesses_page, methods=["GET"]),
    Route("/manage/businesses", create_business, methods=["POST"]),
    Route("/manage/business", business_page, methods=["GET"]),
    Route("/manage/business/numbers", change_numbers, methods=["POST"]),
    Route("/manage/business/locales", new_locale, methods=["POST"]),
    Route("/manage/business/frequency", change_frequency, methods=["POST"]),
]
