"""Manager pages at /manage: businesses, the script editor with live policy checks, history.

Managers edit and publish; auditors may read. A script that fails the policy
linter cannot be published; every publish and rollback is chained as an audit event.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import shutil
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from consent_store import Business, ScriptVersion, StoreError
from ivr.auth import SessionUser, requires, template_user
from ivr.runtime import Runtime
from ivr.scripts_admin import ScriptRejected, preview_script_off_loop, publish_checked
from ivr.web import base_url, templates

_ESPEAK_VOICES = {"en": "en-us", "es": "es"}
MAX_SCRIPT_BYTES = 64_000
MAX_SPEECH_CHARACTERS = 5_000


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def _preview(
    request: Request, business: Business, locale: str, text: str
) -> tuple[list[str], dict[str, str], str]:
    """Problems, rendered prompts and consent TwiML for a script text, rendered in the lint
    worker (never on the event loop; never raises)."""
    preview = await preview_script_off_loop(business, locale, text, base_url(request))
    return preview.problems, preview.prompts, preview.twiml


async def _business(request: Request, user: SessionUser, name: str) -> Business | None:
    """The named business if it exists and the user may see it (else None: a 404, the same for both)."""
    if not user.may_see(name):
        return None
    try:
        return await _runtime(request).store.get_business(name)
    except StoreError:
        return None


@requires("manager", "auditor")
async def index(request: Request, user: SessionUser) -> Response:
    businesses = [b for b in await _runtime(request).store.list_businesses() if user.may_see(b.name)]
    return templates.TemplateResponse(
        request, "manage_index.html", {"businesses": businesses, **template_user(user)}
    )


async def _editor(
    request: Request,
    user: SessionUser,
    business: Business,
    locale: str,
    text: str | None = None,
    message: str | None = None,
    status: int = 200,
) -> Response:
    store = _runtime(request).store
    published = await store.script_version(business.name, locale)
    draft = await store.script_draft(business.name, locale)
    text = text if text is not None else (draft.text if draft else published.text)
    problems, preview, twiml = await _preview(request, business, locale, text)
    context = {
        "business": business.name,
        "locale": locale,
        "csrf": user.csrf,
        "consent": preview.get("consent", ""),
    }
    return templates.TemplateResponse(
        request,
        "manage_script.html",
        {
            "business": business,
            "locale": locale,
            "published": published,
            "draft": draft,
            "text": text,
            "problems": problems,
            "preview": preview,
            "twiml": twiml,
            "message": message,
            "versions": await store.script_versions(business.name, locale),
            # Escaped for a <script type="application/json"> element: no "</" can close it.
            "context_json": json.dumps(context).replace("</", "<\\/"),
            **template_user(user),
        },
        status_code=status,
    )


def _script_url(business: str, locale: str) -> str:
    from urllib.parse import urlencode

    return f"/manage/script?{urlencode({'business': business, 'locale': locale})}"


@requires("manager", "auditor")
async def script_page(request: Request, user: SessionUser) -> Response:
    name, locale = request.query_params.get("business", ""), request.query_params.get("locale", "")
    business = await _business(request, user, name)
    if business is None or locale not in business.locales:
        return PlainTextResponse(f"No script for business {name!r} in locale {locale!r}.", status_code=404)
    return await _editor(request, user, business, locale)


@requires("manager")
async def script_action(request: Request, user: SessionUser) -> Response:
    form = await request.form()
    name, locale = str(form.get("business") or ""), str(form.get("locale") or "")
    text, action = str(form.get("text") or ""), str(form.get("action") or "")
    business = await _business(request, user, name)
    if business is None or locale not in business.locales:
        return PlainTextResponse(f"No script for business {name!r} in locale {locale!r}.", status_code=404)
    if len(text.encode()) > MAX_SCRIPT_BYTES:
        return PlainTextResponse("The script is too long.", status_code=413)
    store = _runtime(request).store
    if action == "save":
        await store.save_draft(business.name, locale, text, user.name)
        return await _editor(
            request, user, business, locale, text, "Draft saved; callers still hear the published version."
        )
    if action == "discard":
        await store.discard_draft(business.name, locale)
        return RedirectResponse(_script_url(business.name, locale), status_code=303)
    if action != "publish":
        return PlainTextResponse("Unknown action.", status_code=400)
    try:
        version = await _publish(request, business, locale, text, user)
    except ScriptRejected:
        await store.save_draft(business.name, locale, text, user.name)
        return await _editor(
            request,
            user,
            business,
            locale,
            text,
            "Not published: fix the errors below. Your text is kept as a draft.",
            422,
        )
    return await _editor(
        request,
        user,
        business,
        locale,
        None,
        f"Published version {version.version}: callers hear it from now on.",
    )


async def _publish(
    request: Request, business: Business, locale: str, text: str, user: SessionUser, note: str = "published"
) -> ScriptVersion:
    """Lint and publish; this process's calls hear it at once (others within a second)."""
    version = await publish_checked(_runtime(request).store, business, locale, text, user.name, note)
    _runtime(request).catalog.invalidate()
    return version


@requires("manager")
async def rollback(request: Request, user: SessionUser) -> Response:
    form = await request.form()
    name, locale = str(form.get("business") or ""), str(form.get("locale") or "")
    business = await _business(request, user, name)
    try:
        target = int(str(form.get("version") or ""))
    except ValueError:
        return PlainTextResponse("version must be a number", status_code=400)
    if business is None or locale not in business.locales:
        return PlainTextResponse("No such script.", status_code=404)
    try:
        old = await _runtime(request).store.script_version(business.name, locale, target)
    except StoreError:
        return PlainTextResponse(f"No version {target} of this script.", status_code=404)
    try:
        version = await _publish(
            request, business, locale, old.text, user, f"rolled back to version {target}"
        )
    except ScriptRejected as exc:
        return await _editor(
            request,
            user,
            business,
            locale,
            old.text,
            f"Version {target} no longer passes the policy check ({exc.problems[0]}).",
            422,
        )
    return await _editor(
        request,
        user,
        business,
        locale,
        None,
        f"Rolled back: version {version.version} has the text of version {target}.",
    )


@requires("manager", "auditor")
async def diff_page(request: Request, user: SessionUser) -> Response:
    name, locale = request.query_params.get("business", ""), request.query_params.get("locale", "")
    try:
        if not user.may_see(name):
            raise ValueError(name)
        new = int(request.query_params.get("version", ""))
        store = _runtime(request).store
        after = await store.script_version(name, locale, new)
        before = await store.script_version(name, locale, new - 1)
    except (ValueError, StoreError):
        return PlainTextResponse("No such version.", status_code=404)
    diff = list(
        difflib.unified_diff(
            before.text.splitlines(),
            after.text.splitlines(),
            f"version {new - 1}",
            f"version {new}",
            lineterm="",
        )
    )
    return templates.TemplateResponse(
        request,
        "manage_diff.html",
        {"business": name, "locale": locale, "old": new - 1, "new": new, "diff": diff, **template_user(user)},
    )


@requires("manager")
async def message_types(request: Request, user: SessionUser) -> Response:
    form = await request.form()
    business = await _business(request, user, str(form.get("business") or ""))
    if business is None:
        return PlainTextResponse("No such business.", status_code=404)
    types = [t.strip() for t in str(form.get("message_types") or "").splitlines() if t.strip()]
    if not types or any(";" in t for t in types):
        return PlainTextResponse("Give at least one message type per line, without ';'.", status_code=400)
    await _runtime(request).store.set_message_types(business.name, types, user.name)
    _runtime(request).catalog.invalidate()
    return RedirectResponse("/manage", status_code=303)


async def _json(request: Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


@requires("manager", "auditor", api=True)
async def lint_api(request: Request, user: SessionUser) -> Response:
    body = await _json(request)
    if body is None:
        return JSONResponse({"error": 'send JSON {"business", "locale", "text"}'}, status_code=400)
    business = await _business(request, user, str(body.get("business", "")))
    locale, text = str(body.get("locale", "")), str(body.get("text", ""))
    if business is None or locale not in business.locales:
        return JSONResponse({"error": "no such business or locale"}, status_code=404)
    # In the lint worker, with a deadline: no template can hold the event loop.
    checked = await preview_script_off_loop(business, locale, text[:MAX_SCRIPT_BYTES], base_url(request))
    return JSONResponse({"problems": checked.problems, "preview": checked.prompts, "twiml": checked.twiml})


@requires("manager", "auditor", api=True)
async def speech_api(request: Request, user: SessionUser) -> Response:
    """The text as a WAV spoken by espeak-ng, when it is installed (else 404: use the browser's voice).

    The text goes to espeak-ng on standard input, never as an argument: "-f/etc/passwd" is
    words to say, not an option that reads a file.
    """
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        return JSONResponse({"error": "espeak-ng is not installed here"}, status_code=404)
    body = await _json(request)
    if body is None:
        return JSONResponse({"error": 'send JSON {"text", "locale"}'}, status_code=400)
    text, locale = str(body.get("text", "")), str(body.get("locale", "en-US"))
    if len(text) > MAX_SPEECH_CHARACTERS:
        limit = MAX_SPEECH_CHARACTERS
        too_long = f"the text is {len(text):,} characters; the speech preview takes {limit:,} at most"
        return JSONResponse({"error": too_long}, status_code=413)
    voice = _ESPEAK_VOICES.get(locale.split("-")[0].lower(), "en-us")
    process = await asyncio.create_subprocess_exec(
        espeak,
        "-v",
        voice,
        "--stdout",
        "--stdin",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        audio, _ = await asyncio.wait_for(process.communicate(text.encode("utf-8")), timeout=20)
    except TimeoutError:
        process.kill()
        await process.wait()
        return JSONResponse({"error": "speech took too long"}, status_code=504)
    return Response(audio, media_type="audio/wav")


routes = [
    Route("/manage", index, methods=["GET"]),
    Route("/manage/script", script_page, methods=["GET"]),
    Route("/manage/script", script_action, methods=["POST"]),
    Route("/manage/script/rollback", rollback, methods=["POST"]),
    Route("/manage/script/diff", diff_page, methods=["GET"]),
    Route("/manage/message-types", message_types, methods=["POST"]),
    Route("/manage/api/lint", lint_api, methods=["POST"]),
    Route("/manage/api/speech", speech_api, methods=["POST"]),
]
