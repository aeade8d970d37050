"""Manager pages at /manage: businesses, the script editor (a form, with the TOML behind an
"Advanced" switch), live policy checks, drafts, publish, history, diff and roll back.

Managers edit and publish; auditors may read. A script that fails the policy linter cannot be
published; publishing the text callers already hear changes nothing; every publish and rollback
is chained as an audit event. The JSON the page calls is in ivr/pages/manage_api.py, the comparison of
two versions in ivr/pages/script_compare.py.
"""

from __future__ import annotations

import difflib
import json
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from consent_store import Business, ScriptVersion, StoreError
from ivr.exceptions import FormNotApplied, ScriptRejected
from ivr.pages import manage_api, script_compare
from ivr.pages.auth import SessionUser, requires, template_user
from ivr.pages.script_editing import MAX_SCRIPT_BYTES, business_for, check_draft, text_from_post
from ivr.pages.script_form import KEY_CHOICES, KEY_LABELS, PROMPT_HELP, PROMPT_LABELS, voice_choices
from ivr.pages.web import templates
from ivr.runtime import request_runtime
from ivr.scripts_admin import publish_checked
from voice_scripts.plain_text import PLACEHOLDERS


@requires("manager", "auditor")
async def index(request: Request, user: SessionUser) -> Response:
    businesses = [b for b in await request_runtime(request).store.list_businesses() if user.may_see(b.name)]
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
    view: str = "form",
) -> Response:
    store = request_runtime(request).store
    published = await store.script_version(business.name, locale)
    draft = await store.script_draft(business.name, locale)
    text = text if text is not None else (draft.text if draft else published.text)
    checked = await check_draft(request, business, locale, text)
    if checked.form is None:
        view = "toml"  # the form cannot show a script whose TOML does not parse
    context = {
        "business": business.name,
        "locale": locale,
        "csrf": user.csrf,
        "consent": checked.preview.prompts.get("consent", ""),
        "published_version": published.version,
        "can_edit": user.can_edit,
        # The check was stopped at its deadline (a cold or busy worker): the page checks again.
        "recheck": any(n.rule == "renders" and n.box == "script" for n in checked.notes),
        "bad_lines": sorted({n.line for n in checked.notes if n.line and n.severity == "error"}),
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
            "checked": checked,
            "form": checked.form,
            "problems": checked.preview.problems,
            "preview": checked.preview.prompts,
            "twiml": checked.preview.twiml,
            "message": message,
            "view": view if view in ("form", "toml") else "form",
            "prompt_labels": PROMPT_LABELS,
            "prompt_help": PROMPT_HELP,
            "key_labels": KEY_LABELS,
            "key_choices": KEY_CHOICES,
            "voices": voice_choices(locale, checked.form.voice if checked.form else ""),
            "placeholders": PLACEHOLDERS,
            "versions": await store.script_versions(business.name, locale),
            "rehearse": bool(request_runtime(request).settings.try_phone) and user.can_edit,
            # Escaped for a <script type="application/json"> element: no "</" can close it.
            "context_json": json.dumps(context).replace("</", "<\\/"),
            **template_user(user),
        },
        status_code=status,
    )


def _script_url(business: str, locale: str) -> str:
    return f"/manage/script?{urlencode({'business': business, 'locale': locale})}"


@requires("manager", "auditor")
async def script_page(request: Request, user: SessionUser) -> Response:
    name, locale = request.query_params.get("business", ""), request.query_params.get("locale", "")
    business = await business_for(request, user, name)
    if business is None or locale not in business.locales:
        return PlainTextResponse(f"No script for business {name!r} in locale {locale!r}.", status_code=404)
    return await _editor(request, user, business, locale, view=request.query_params.get("view", "form"))


@requires("manager")
async def script_action(request: Request, user: SessionUser) -> Response:
    form = await request.form()
    # Browsers post a textarea's line breaks as CRLF (HTML's form encoding); the manager saw LF.
    fields = {key: value.replace("\r\n", "\n") for key, value in form.items() if isinstance(value, str)}
    name, locale = fields.get("business", ""), fields.get("locale", "")
    action, view = fields.get("action", ""), fields.get("view", "toml")
    business = await business_for(request, user, name)
    if business is None or locale not in business.locales:
        return PlainTextResponse(f"No script for business {name!r} in locale {locale!r}.", status_code=404)
    if sum(len(v.encode()) for v in fields.values()) > 2 * MAX_SCRIPT_BYTES:
        return PlainTextResponse("The script is too long.", status_code=413)
    store = request_runtime(request).store
    if action == "discard":
        await store.discard_draft(business.name, locale)
        return RedirectResponse(_script_url(business.name, locale), status_code=303)
    if action not in ("save", "publish", "rehearse"):
        return PlainTextResponse("Unknown action.", status_code=400)
    try:
        text = text_from_post(fields, fields.get("text", ""), business.message_types)
    except FormNotApplied as exc:
        return await _editor(
            request, user, business, locale, fields.get("text", ""), f"Not saved: {exc.problem}.", 422, "toml"
        )
    if len(text.encode()) > MAX_SCRIPT_BYTES:
        return PlainTextResponse("The script is too long.", status_code=413)
    if action == "save":
        await store.save_draft(business.name, locale, text, user.name)
        saved = "Draft saved; callers still hear the published version."
        return await _editor(request, user, business, locale, text, saved, view=view)
    if action == "rehearse":
        await store.save_draft(business.name, locale, text, user.name)
        number = urlencode({"to": business.numbers[0], "draft": "1"})
        return RedirectResponse(f"/try?{number}", status_code=303)
    published = await store.script_version(business.name, locale)
    if text == published.text:
        await store.discard_draft(business.name, locale)
        same = f"Nothing to publish: this is the text callers already hear (version {published.version})."
        return await _editor(request, user, business, locale, None, same, view=view)
    try:
        version = await _publish(request, business, locale, text, user)
    except ScriptRejected:
        await store.save_draft(business.name, locale, text, user.name)
        checked = await check_draft(request, business, locale, text)
        first = next((n.text for n in checked.notes if n.severity == "error"), "see the policy check")
        refused = f"Not published: {first}. Your text is kept as a draft."
        return await _editor(request, user, business, locale, text, refused, 422, view)
    announced = f"Published version {version.version}: callers hear it from now on."
    return await _editor(request, user, business, locale, None, announced, view=view)


async def _publish(
    request: Request, business: Business, locale: str, text: str, user: SessionUser, note: str = "published"
) -> ScriptVersion:
    """Lint and publish; this process's calls hear it at once (others within a second)."""
    version = await publish_checked(request_runtime(request).store, business, locale, text, user.name, note)
    request_runtime(request).catalog.invalidate()
    return version


@requires("manager")
async def rollback(request: Request, user: SessionUser) -> Response:
    form = await request.form()
    name, locale = str(form.get("business") or ""), str(form.get("locale") or "")
    business = await business_for(request, user, name)
    try:
        target = int(str(form.get("version") or ""))
    except ValueError:
        return PlainTextResponse("version must be a number", status_code=400)
    if business is None or locale not in business.locales:
        return PlainTextResponse("No such script.", status_code=404)
    store = request_runtime(request).store
    try:
        old = await store.script_version(business.name, locale, target)
    except StoreError:
        return PlainTextResponse(f"No version {target} of this script.", status_code=404)
    current = await store.script_version(business.name, locale)
    if old.text == current.text:
        same = f"Nothing to roll back: version {target} has the text callers already hear."
        return await _editor(request, user, business, locale, None, same)
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
    rolled_back = f"Rolled back: version {version.version} has the text of version {target}."
    return await _editor(request, user, business, locale, None, rolled_back)


@requires("manager", "auditor")
async def diff_page(request: Request, user: SessionUser) -> Response:
    name, locale = request.query_params.get("business", ""), request.query_params.get("locale", "")
    try:
        if not user.may_see(name):
            raise ValueError(name)
        new = int(request.query_params.get("version", ""))
        store = request_runtime(request).store
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
    business = await business_for(request, user, str(form.get("business") or ""))
    if business is None:
        return PlainTextResponse("No such business.", status_code=404)
    types = [t.strip() for t in str(form.get("message_types") or "").splitlines() if t.strip()]
    if not types or any(";" in t for t in types):
        return PlainTextResponse("Give at least one message type per line, without ';'.", status_code=400)
    await request_runtime(request).store.set_message_types(business.name, types, user.name)
    request_runtime(request).catalog.invalidate()
    return RedirectResponse("/manage", status_code=303)


routes = [
    Route("/manage", index, methods=["GET"]),
    Route("/manage/script", script_page, methods=["GET"]),
    Route("/manage/script", script_action, methods=["POST"]),
    Route("/manage/script/rollback", rollback, methods=["POST"]),
    Route("/manage/script/diff", diff_page, methods=["GET"]),
    Route("/manage/script/compare", script_compare.compare_page, methods=["GET"]),
    Route("/manage/message-types", message_types, methods=["POST"]),
    *manage_api.routes,
]
