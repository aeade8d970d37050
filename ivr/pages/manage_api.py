"""The JSON the script editor calls as the manager types: check, save a draft, changes, speech.

Every POST carries the session's CSRF token in X-CSRF-Token (ivr.pages.auth.requires). Checks run in
the lint worker with its deadline (ivr.pages.script_editing.check_draft), never on the event loop.
"""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from consent_store import Business
from ivr.exceptions import FormNotApplied
from ivr.pages.auth import SessionUser, requires
from ivr.pages.script_compare import prompt_changes, setting_changes
from ivr.pages.script_editing import MAX_SCRIPT_BYTES, business_for, check_draft, text_from_post
from ivr.runtime import request_runtime
from ivr.scripts_admin import render_versions_off_loop
from voice_scripts import ScriptError, language_for

MAX_SPEECH_CHARACTERS = 5_000
MAX_FIELDS = 200


async def _json(request: Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


async def _draft_request(request: Request, user: SessionUser) -> tuple[Business, str, str] | JSONResponse:
    """The business, locale and draft text a JSON body asks about, or the error response.

    The body is {"business", "locale", "text"} and, from the form view, "view": "form" and
    "fields": {"prompt.consent": "...", ...} to be written into the text."""
    body = await _json(request)
    if body is None:
        return JSONResponse({"error": 'send JSON {"business", "locale", "text"}'}, status_code=400)
    business = await business_for(request, user, str(body.get("business", "")))
    locale, text = str(body.get("locale", "")), str(body.get("text", ""))
    if business is None or locale not in business.locales:
        return JSONResponse({"error": "no such business or locale"}, status_code=404)
    raw_fields = body.get("fields", {})
    if not isinstance(raw_fields, dict) or len(raw_fields) > MAX_FIELDS:
        return JSONResponse({"error": "fields must be an object of form fields"}, status_code=400)
    fields = {str(k): str(v) for k, v in raw_fields.items()}
    fields["view"] = str(body.get("view", "toml"))
    if len(text.encode()) + sum(len(v.encode()) for v in fields.values()) > 2 * MAX_SCRIPT_BYTES:
        return JSONResponse({"error": "the script is too long"}, status_code=413)
    try:
        text = text_from_post(fields, text, business.message_types)
    except FormNotApplied as exc:
        return JSONResponse({"error": exc.problem}, status_code=422)
    return business, locale, text


@requires("manager", "auditor", api=True)
async def lint_api(request: Request, user: SessionUser) -> Response:
    """Problems, prompts as spoken and the consent TwiML for a draft; with the draft's TOML text, its
    form values, and each problem with its box and line."""
    asked = await _draft_request(request, user)
    if isinstance(asked, JSONResponse):
        return asked
    business, locale, text = asked
    checked = await check_draft(request, business, locale, text[:MAX_SCRIPT_BYTES])
    return JSONResponse(
        {
            "problems": checked.preview.problems,
            "preview": checked.preview.prompts,
            "twiml": checked.preview.twiml,
            "text": checked.text,
            "form": checked.form_json(),
            "notes": [n.as_json() for n in checked.notes],
            "blocked": checked.blocked,
        }
    )


@requires("manager", api=True)
async def draft_api(request: Request, user: SessionUser) -> Response:
    """Save the draft as it stands (the editor saves as the manager types); callers still hear the
    published version."""
    asked = await _draft_request(request, user)
    if isinstance(asked, JSONResponse):
        return asked
    business, locale, text = asked
    if len(text.encode()) > MAX_SCRIPT_BYTES:
        return JSONResponse({"error": "the script is too long"}, status_code=413)
    store = request_runtime(request).store
    published = await store.script_version(business.name, locale)
    if text == published.text:
        await store.discard_draft(business.name, locale)
        return JSONResponse(
            {"saved": False, "text": text, "message": "No changes from the published version."}
        )
    await store.save_draft(business.name, locale, text, user.name)
    return JSONResponse({"saved": True, "text": text, "message": "Draft saved."})


@requires("manager", "auditor", api=True)
async def changes_api(request: Request, user: SessionUser) -> Response:
    """What publishing this draft would change for callers, prompt by prompt (changed words marked,
    HTML-escaped), to confirm before publishing."""
    asked = await _draft_request(request, user)
    if isinstance(asked, JSONResponse):
        return asked
    business, locale, text = asked
    published = await request_runtime(request).store.script_version(business.name, locale)
    if text == published.text:
        return JSONResponse({"same": True, "version": published.version, "prompts": [], "settings": []})
    old, new = await render_versions_off_loop(business, (published.text, text))
    if isinstance(new, str):
        return JSONResponse({"error": new}, status_code=422)
    changes = [c for c in prompt_changes(old if isinstance(old, dict) else {}, new) if c.changed]
    return JSONResponse(
        {
            "same": False,
            "version": published.version,
            "prompts": [{"label": c.label, "old": str(c.old), "new": str(c.new)} for c in changes],
            "settings": [
                {"label": label, "old": before, "new": after}
                for label, before, after in setting_changes(published.text, text, business.message_types)
            ],
        }
    )


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
    try:
        voice = language_for(locale).espeak_voice  # the [preview] of voice_scripts/locales/<language>.toml
    except ScriptError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
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
    Route("/manage/api/lint", lint_api, methods=["POST"]),
    Route("/manage/api/draft", draft_api, methods=["POST"]),
    Route("/manage/api/changes", changes_api, methods=["POST"]),
    Route("/manage/api/speech", speech_api, methods=["POST"]),
]
