"""What callers heard then and now: two versions of a script side by side, prompt by prompt.

Changed words are marked (<del>/<ins>, every word HTML-escaped), and each version's quality
figures sit beside it (read from the store's per-version figures; never computed here). Also the
changes a publish would make, for the editor's confirmation.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from consent_store import StoreError
from consent_store.stats import ScriptFigures
from ivr.pages.auth import SessionUser, requires, template_user
from ivr.pages.script_form import KEY_LABELS, PROMPT_LABELS, read_form
from ivr.pages.web import templates
from ivr.quality.report import figure_row
from ivr.runtime import Runtime
from ivr.scripts_admin import render_versions_off_loop
from voice_scripts import PROMPT_NAMES, ScriptFormatError


@dataclass(frozen=True)
class PromptChange:
    """One prompt in two versions: the spoken words with the changed ones marked."""

    name: str
    label: str
    old: Markup
    new: Markup
    changed: bool


def word_diff(old: str, new: str) -> tuple[Markup, Markup]:
    """`old` with removed words in <del>, `new` with added words in <ins>; all text escaped."""
    a, b = old.split(), new.split()
    left: list[str] = []
    right: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        was, now = str(escape(" ".join(a[i1:i2]))), str(escape(" ".join(b[j1:j2])))
        if op == "equal":
            left.append(was)
            right.append(now)
            continue
        if was:
            left.append(f"<del>{was}</del>")
        if now:
            right.append(f"<ins>{now}</ins>")
    return Markup(" ".join(left)), Markup(" ".join(right))


def prompt_changes(old: dict[str, str], new: dict[str, str]) -> list[PromptChange]:
    """Every prompt, in the order callers meet them, old beside new."""
    changes = []
    for name in PROMPT_LABELS:
        if name not in PROMPT_NAMES:
            continue
        before, after = old.get(name, ""), new.get(name, "")
        left, right = word_diff(before, after)
        changes.append(PromptChange(name, PROMPT_LABELS[name], left, right, before != after))
    return changes


def setting_changes(
    old_text: str, new_text: str, message_types: tuple[str, ...]
) -> list[tuple[str, str, str]]:
    """What else changes between two script texts, as (what, before, after): the voice, the
    frequency, the keys and the message types' spoken names."""
    try:
        old, new = read_form(old_text, message_types), read_form(new_text, message_types)
    except ScriptFormatError:
        return []
    changes = []
    if old.voice != new.voice:
        changes.append(("Voice", old.voice, new.voice))
    if old.frequency != new.frequency:
        changes.append(("Frequency", old.frequency, new.frequency))
    for name, label in KEY_LABELS.items():
        if old.keys[name] != new.keys[name]:
            changes.append((label, old.keys[name], new.keys[name]))
    for message_type in message_types:
        before, after = old.type_names[message_type], new.type_names[message_type]
        if before != after:
            changes.append((f"“{message_type}” is said as", before or message_type, after or message_type))
    return changes


# The figures shown beside each version: (label, key of ivr.quality.report.figure_row, is a rate)
FIGURES: tuple[tuple[str, str, bool], ...] = (
    ("Calls", "calls", False),
    ("Answered", "answered", False),
    ("Opted in", "opt_in_rate", True),
    ("Declined", "declined_rate", True),
    ("Opted out", "opt_out_rate", True),
    ("Hung up before choosing", "hung_up_rate", True),
    ("No key pressed", "no_input_rate", True),
    ("Median seconds to a choice", "median_s_to_decision", False),
)


def _figure_text(value: object, is_rate: bool) -> str:
    if value is None or value == "":
        return "–"
    if is_rate and isinstance(value, int | float):
        return f"{value:.0%}"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _figures(scripts: tuple[ScriptFigures, ...], locale: str, version: int) -> list[tuple[str, str]] | None:
    for figures in scripts:
        if figures.locale == locale and figures.script_version == version:
            row = figure_row(figures)
            return [(label, _figure_text(row.get(key), rate)) for label, key, rate in FIGURES]
    return None


@requires("manager", "auditor")
async def compare_page(request: Request, user: SessionUser) -> Response:
    query = request.query_params
    name, locale = query.get("business", ""), query.get("locale", "")
    runtime: Runtime = request.app.state.runtime
    store = runtime.store
    try:
        if not user.may_see(name):
            raise StoreError("not this user's business")  # answered like one that does not exist
        business = await store.get_business(name)
        if locale not in business.locales:
            raise StoreError("no such locale")
    except StoreError:
        return PlainTextResponse(f"No script for business {name!r} in locale {locale!r}.", status_code=404)
    versions = await store.script_versions(business.name, locale)
    numbers = sorted(v.version for v in versions)
    try:
        a, b = int(query.get("a", "")), int(query.get("b", ""))
    except ValueError:
        a, b = (numbers[-2], numbers[-1]) if len(numbers) > 1 else (numbers[-1], numbers[-1])
        if query.get("a") or query.get("b"):
            return PlainTextResponse("a and b must be version numbers, e.g. a=1&b=2.", status_code=400)
    try:
        old = await store.script_version(business.name, locale, a)
        new = await store.script_version(business.name, locale, b)
    except StoreError:
        return PlainTextResponse(f"No version {a} or {b} of this script.", status_code=404)
    rendered = await render_versions_off_loop(business, (old.text, new.text))
    problems = [r for r in rendered if isinstance(r, str)]
    old_prompts, new_prompts = (r if isinstance(r, dict) else {} for r in rendered)
    figures = await store.opt_in_quality(business.name, business.locales)
    return templates.TemplateResponse(
        request,
        "manage_compare.html",
        {
            "business": business,
            "locale": locale,
            "versions": versions,
            "old": old,
            "new": new,
            "changes": prompt_changes(old_prompts, new_prompts),
            "problems": problems,
            "old_figures": _figures(figures.scripts, locale, a),
            "new_figures": _figures(figures.scripts, locale, b),
            **template_user(user),
        },
    )
