"""What the script editor's pages and API share: a draft text checked, as form and as notes.

A draft is always a TOML text (what is stored and published). The form view posts its fields,
which are written into that text (ivr.pages.script_form); the TOML view posts the text itself. Either
way the result is checked in the lint worker and described as notes: each problem with the box
it concerns (form view) and the line it is on (TOML view).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from starlette.requests import Request

from consent_store import Business, StoreError
from ivr.exceptions import FormNotApplied
from ivr.pages.auth import SessionUser
from ivr.pages.script_form import (
    BOX_LABELS,
    ScriptForm,
    apply_form,
    box_of,
    form_from_fields,
    form_problems,
    read_form,
)
from ivr.pages.web import base_url
from ivr.runtime import request_runtime
from ivr.scripts_admin import ScriptPreview, preview_script_off_loop
from voice_scripts import ScriptFormatError

MAX_SCRIPT_BYTES = 64_000
_AT_LINE = re.compile(r"at line (\d+)")


async def business_for(request: Request, user: SessionUser, name: str) -> Business | None:
    """The named business if it exists and the user may see it (else None: a 404, the same for both)."""
    if not user.may_see(name):
        return None
    try:
        return await request_runtime(request).store.get_business(name)
    except StoreError:
        return None


@dataclass(frozen=True)
class Note:
    """One problem as the editor shows it: beside its box, on its line, and in the list."""

    box: str
    label: str
    severity: str  # "error" blocks publishing, "warning" does not
    rule: str
    message: str
    line: int | None  # in the TOML text, when it can be told

    @property
    def text(self) -> str:
        must = "must fix" if self.severity == "error" else "should fix"
        rule = f", rule [{self.rule}]" if self.rule else ""
        return f"{self.label}: {self.message} ({must}{rule})"

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "text": self.text}


@dataclass(frozen=True)
class CheckedDraft:
    """A draft text, its form (None when the TOML does not parse) and everything wrong with it."""

    text: str
    form: ScriptForm | None
    notes: tuple[Note, ...]
    preview: ScriptPreview

    @property
    def blocked(self) -> bool:
        return any(n.severity == "error" for n in self.notes)

    def notes_for(self, box: str) -> list[Note]:
        return [n for n in self.notes if n.box == box or (box == "keys" and n.box.startswith("key-"))]

    def form_json(self) -> dict[str, Any] | None:
        if self.form is None:
            return None
        return {
            "voice": self.form.voice,
            "frequency": self.form.frequency,
            "keys": dict(self.form.keys),
            "prompts": dict(self.form.prompts),
            "type_names": dict(self.form.type_names),
        }


def line_of(text: str, box: str) -> int | None:
    """The line of the TOML text where a box's value is written (1-based), if it can be found."""
    if box.startswith("prompt-"):
        pattern = rf"^[ \t]*{re.escape(box.removeprefix('prompt-'))}\s*="
    elif box.startswith("key-"):
        pattern = rf"^[ \t]*{re.escape(box.removeprefix('key-'))}\s*="
    else:
        pattern = {
            "keys": r"^[ \t]*\[keys\]",
            "voice": r"^[ \t]*voice\s*=",
            "frequency": r"^[ \t]*frequency\s*=",
            "type-names": r"^[ \t]*\[message_types\]",
        }.get(box, r"(?!)")
    found = re.search(pattern, text, re.MULTILINE)
    return text.count("\n", 0, found.start()) + 1 if found else None


async def check_draft(request: Request, business: Business, locale: str, text: str) -> CheckedDraft:
    """Check a draft text in the lint worker and describe it for both views."""
    preview = await preview_script_off_loop(business, locale, text[:MAX_SCRIPT_BYTES], base_url(request))
    notes: list[Note] = []
    form: ScriptForm | None = None
    if preview.format_error is not None:
        at = _AT_LINE.search(preview.format_error)
        notes.append(
            Note(
                "script",
                "Advanced (TOML)",
                "error",
                "",
                f"{preview.format_error}; the form cannot show the script until this is fixed",
                int(at.group(1)) if at else None,
            )
        )
    else:
        try:
            form = read_form(text, business.message_types)
        except ScriptFormatError as exc:  # the worker's locale check passed but the text is odd
            notes.append(Note("script", "Advanced (TOML)", "error", "", exc.problem, None))
        else:
            for problem in form_problems(form):
                notes.append(Note(problem.box, problem.label, "error", "form", problem.message, None))
    for finding in preview.findings:
        box = box_of(finding)
        notes.append(
            Note(box, BOX_LABELS[box], finding.severity, finding.rule, finding.message, line_of(text, box))
        )
    return CheckedDraft(text, form, tuple(notes), preview)


def text_from_post(fields: Mapping[str, str], text: str, message_types: tuple[str, ...]) -> str:
    """The draft text a post means: the TOML as posted, with the form's fields written in when the
    form view posted it (view=form). FormNotApplied when the TOML under the form does not parse."""
    if fields.get("view") != "form":
        return text
    try:
        current = read_form(text, message_types)
        return apply_form(text, form_from_fields(fields, current))
    except ScriptFormatError as exc:
        raise FormNotApplied(
            f"the script's TOML has an error ({exc.problem}): fix it in the Advanced view first"
        ) from exc
