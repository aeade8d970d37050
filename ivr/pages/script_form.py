"""The script form: a voice script as labelled boxes, keys, a voice and a frequency, and back to TOML.

The form and the TOML view edit one draft text. `read_form` shows a script's TOML as the form;
`apply_form` writes the form's values into that same TOML with tomlkit, changing only the values
that changed, so comments and untouched prompts keep their layout. Prompts are plain text with
placeholders (voice_scripts.plain_text). `form_problems` refuses what the form itself can tell is
wrong (two choices on one key) in words naming the box; `box_of` maps each policy finding to the
box it concerns, so the manager sees which box breaks which rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import tomlkit
import tomlkit.exceptions
from tomlkit.items import Table

from voice_scripts import KEY_NAMES, PROMPT_NAMES, Finding, ScriptFormatError, parse_script
from voice_scripts.lint import CHOICE_KEYS
from voice_scripts.plain_text import to_plain, to_template
from voice_scripts.voices import voice_catalog

PROMPT_LABELS: dict[str, str] = {
    "consent": "Consent prompt",
    "subscribed": "Already opted in",
    "confirmed": "Confirmation",
    "declined": "Declined",
    "opted_out": "Opted out",
    "invalid": "Wrong key",
    "no_input": "No key pressed",
    "goodbye": "Goodbye",
    "error": "Technical problem",
    "language_menu": "Language menu",
}
PROMPT_HELP: dict[str, str] = {
    "consent": "What a new caller hears first: who you are, what you will send, how often, how to stop, "
    "and the keys.",
    "subscribed": "What a caller who has already opted in hears instead: how to stop.",
    "confirmed": "After the caller opts in.",
    "declined": "After the caller declines.",
    "opted_out": "After the caller opts out.",
    "invalid": "When the caller presses a key that is not one of the choices (the prompt is then repeated).",
    "no_input": "When the caller presses nothing (the prompt is then repeated).",
    "goodbye": "After three tries without a choice, before the call ends.",
    "error": "When the choice could not be recorded because of a fault on our side.",
    "language_menu": "Only for businesses with more than one language: this language's line in the "
    "language menu.",
}
KEY_LABELS: dict[str, str] = {
    "opt_in": "Opt-in key",
    "decline": "Decline key",
    "opt_out": "Opt-out key",
    "repeat": "Repeat key",
}
KEY_CHOICES: tuple[str, ...] = tuple(sorted(CHOICE_KEYS - {"*"})) + ("*",)
MAX_PROMPT_CHARACTERS = 6_000
Box = str  # "prompt-consent", "key-opt_in", "keys", "voice", "frequency", "type-names", "script"
View = Literal["form", "toml"]


@dataclass(frozen=True)
class ScriptForm:
    """A script as the form shows it. A prompt is None when it uses template code the form cannot
    show (it stays as it is, edited in the TOML view)."""

    voice: str
    frequency: str
    keys: Mapping[str, str]
    prompts: Mapping[str, str | None]
    type_names: Mapping[str, str]  # the business's message type -> its spoken name ('' = as written)


@dataclass(frozen=True)
class FormProblem:
    """Something wrong in one box, in words."""

    box: Box
    label: str
    message: str

    def __str__(self) -> str:
        return f"{self.label}: {self.message}"


def read_form(text: str, message_types: tuple[str, ...]) -> ScriptForm:
    """The form for a script's TOML; ScriptFormatError when the TOML is not a valid script."""
    script = parse_script(text)
    return ScriptForm(
        voice=script.voice,
        frequency=script.frequency,
        keys=script.keys.as_dict(),
        prompts={name: to_plain(script.prompts[name]) for name in PROMPT_NAMES},
        type_names={t: script.message_type_names.get(t, "") for t in message_types},
    )


def form_from_fields(fields: Mapping[str, str], current: ScriptForm) -> ScriptForm:
    """The form as posted (fields 'voice', 'frequency', 'key.NAME', 'prompt.NAME', 'type.TYPE');
    a field that is absent keeps its current value."""

    def field(name: str, default: str) -> str:
        value = fields.get(name)
        return default if value is None else str(value).replace("\r\n", "\n").replace("\r", "\n")

    prompts: dict[str, str | None] = {}
    for name in PROMPT_NAMES:
        now = current.prompts[name]
        prompts[name] = now if now is None else field(f"prompt.{name}", now).strip()
    return ScriptForm(
        voice=field("voice", current.voice).strip(),
        frequency=field("frequency", current.frequency).strip(),
        keys={name: field(f"key.{name}", current.keys[name]).strip() for name in KEY_NAMES},
        prompts=prompts,
        type_names={t: field(f"type.{t}", n).strip() for t, n in current.type_names.items()},
    )


def form_problems(form: ScriptForm) -> list[FormProblem]:
    """What the form refuses before any policy check: keys that clash or are not keys, empty fields."""
    problems = []
    seen: dict[str, str] = {}
    for name in KEY_NAMES:
        key = form.keys[name]
        label = KEY_LABELS[name]
        if key not in KEY_CHOICES:
            problems.append(FormProblem(f"key-{name}", label, f"{key!r} is not a key: choose 0-9 or *"))
        elif key in seen:
            other = KEY_LABELS[seen[key]].lower()
            problems.append(
                FormProblem(
                    f"key-{name}",
                    label,
                    f"{key} is already the {other}: the same key cannot be chosen twice; "
                    "choose a different key for each",
                )
            )
        else:
            seen[key] = name
    if not form.voice:
        problems.append(FormProblem("voice", "Voice", "choose a voice"))
    if not form.frequency:
        problems.append(FormProblem("frequency", "Frequency", "say how often messages are sent"))
    for name, plain in form.prompts.items():
        if plain is not None and len(plain) > MAX_PROMPT_CHARACTERS:
            problems.append(
                FormProblem(
                    f"prompt-{name}",
                    PROMPT_LABELS[name],
                    f"is {len(plain):,} characters; the form takes {MAX_PROMPT_CHARACTERS:,} at most",
                )
            )
    return problems


def _string(value: str) -> tomlkit.items.String:
    return tomlkit.string(value, multiline="\n" in value)


def _table(doc: tomlkit.TOMLDocument, name: str) -> Table:
    table = doc.get(name)
    if not isinstance(table, Table):
        table = tomlkit.table()
        doc[name] = table
    return table


def apply_form(text: str, form: ScriptForm) -> str:
    """`text` with the form's values written in; unchanged values keep their text and layout.

    ScriptFormatError when `text` is not TOML (the form can only be applied to a script it read).
    """
    try:
        doc = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise ScriptFormatError(f"invalid TOML: {exc}") from exc
    before = read_form(text, tuple(form.type_names))
    if form.voice != before.voice:
        doc["voice"] = form.voice
    if form.frequency != before.frequency:
        doc["frequency"] = form.frequency
    keys = _table(doc, "keys")
    for name in KEY_NAMES:
        if form.keys[name] != before.keys[name]:
            keys[name] = form.keys[name]
    prompts = _table(doc, "prompts")
    for name in PROMPT_NAMES:
        plain, was = form.prompts[name], before.prompts[name]
        if plain is not None and (was is None or plain.strip() != was.strip()):
            prompts[name] = _string(to_template(plain))
    names = _table(doc, "message_types")
    for message_type, spoken in form.type_names.items():
        if spoken == before.type_names.get(message_type, ""):
            continue
        if spoken:
            names[message_type] = spoken
        elif message_type in names:
            del names[message_type]
    return tomlkit.dumps(doc)


def with_type_names(text: str, names: Mapping[str, str]) -> str:
    """`text` with these spoken names of message types in its [message_types] table."""
    doc = tomlkit.parse(text)
    table = _table(doc, "message_types")
    for message_type, spoken in names.items():
        table[message_type] = spoken
    return tomlkit.dumps(doc)


def voice_choices(locale: str, current: str) -> list[str]:
    """The voices that speak `locale` (Polly first), with the script's own voice first if it is not
    one of them (the policy check then says why)."""
    voices = list(voice_catalog().voices_for(locale))
    return voices if current in voices else [current, *voices]


def box_of(finding: Finding) -> Box:
    """The form box a policy finding concerns."""
    if finding.prompt in PROMPT_NAMES:
        return f"prompt-{finding.prompt}"
    if finding.prompt in ("keys", "voice", "frequency"):
        return finding.prompt
    if finding.prompt == "message_types":
        return "type-names"
    return "script"


BOX_LABELS: dict[str, str] = {
    **{f"prompt-{name}": label for name, label in PROMPT_LABELS.items()},
    **{f"key-{name}": label for name, label in KEY_LABELS.items()},
    "keys": "Keys",
    "voice": "Voice",
    "frequency": "Frequency",
    "type-names": "Message types in this language",
    "script": "Script",
}


def describe(finding: Finding) -> str:
    """A finding in a manager's words: the box, what to do, and the rule's name."""
    severity = "Must fix" if finding.severity == "error" else "Should fix"
    return f"{BOX_LABELS[box_of(finding)]}: {finding.message} ({severity}; rule {finding.rule})"
