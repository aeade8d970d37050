"""Prompts in plain language: placeholders a manager can type and a screen reader can read.

A prompt is stored as a Jinja2 template (`{{ message_types | spoken_list }}`); the script form
shows and takes it as plain text with placeholders in square brackets (`[message types]`).
`to_template` and `to_plain` convert between the two: every plain text survives the round trip
(placeholders spelt in any case or spacing come back in their one spelling), and the template
renders to the plain text with each placeholder said. A template that uses anything else
(`{% if %}`, a filter of its own) has no plain form: `to_plain` says so with None, and the form
leaves that prompt to the TOML view.

Data only: never renders, never imports `ivr`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "PLACEHOLDERS",
    "Placeholder",
    "canonical_plain",
    "placeholder_named",
    "to_plain",
    "to_template",
    "unknown_placeholders",
]


@dataclass(frozen=True)
class Placeholder:
    """One insertable variable: how a manager writes it, and the template it stands for."""

    label: str  # written "[label]" in plain text
    template: str  # the canonical template text
    expression: str  # a regular expression matching the inside of {{ ... }}, whitespace-free
    hint: str  # what it says, for the chip's title and the docs


PLACEHOLDERS: tuple[Placeholder, ...] = (
    Placeholder("business name", "{{ business }}", r"business", "the business's name"),
    Placeholder(
        "message types",
        "{{ message_types | spoken_list }}",
        r"message_types\|spoken_list",
        "the message types in this language, as a list: 'a, b and c'",
    ),
    Placeholder("frequency", "{{ frequency }}", r"frequency", "how often messages are sent"),
    Placeholder(
        "opt-in key", "{{ keys.opt_in | spoken_key }}", r"keys\.opt_in\|spoken_key", "the key to opt in"
    ),
    Placeholder(
        "decline key", "{{ keys.decline | spoken_key }}", r"keys\.decline\|spoken_key", "the key to decline"
    ),
    Placeholder(
        "opt-out key", "{{ keys.opt_out | spoken_key }}", r"keys\.opt_out\|spoken_key", "the key to opt out"
    ),
    Placeholder(
        "repeat key",
        "{{ keys.repeat | spoken_key }}",
        r"keys\.repeat\|spoken_key",
        "the key to hear it again",
    ),
    Placeholder("menu key", "{{ menu_key }}", r"menu_key", "the key of this language in the language menu"),
)
# A literal "{" is written as this expression, so no brace a manager types can open template code.
_LITERAL_BRACE = '{{ "{" }}'
_BRACE_EXPRESSIONS = frozenset({'"{"', "'{'"})
_BRACKETED = re.compile(r"\[([^\[\]\n]{1,40})\]")
_TAG = re.compile(r"\{\{(.*?)\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_OPENER = re.compile(r"\{[{%#]")
_SPACE = re.compile(r"\s+")


def _key(label: str) -> str:
    """A label as compared: case, spacing and 'opt in' / 'opt-in' do not matter."""
    return _SPACE.sub(" ", label.replace("-", " ")).strip().casefold()


_BY_KEY = {_key(p.label): p for p in PLACEHOLDERS}
_BY_EXPRESSION = [(re.compile(p.expression), p) for p in PLACEHOLDERS]


def placeholder_named(label: str) -> Placeholder | None:
    """The placeholder a bracketed label names ('Message Types' too), or None."""
    return _BY_KEY.get(_key(label))


def unknown_placeholders(text: str) -> list[str]:
    """Every '[...]' in `text` that names no placeholder, as written ('[mesage types]')."""
    return [m.group() for m in _BRACKETED.finditer(text) if placeholder_named(m.group(1)) is None]


def to_template(plain: str) -> str:
    """The template for a plain-text prompt: placeholders become variables, every '{' a literal."""
    out: list[str] = []
    at = 0
    for match in _BRACKETED.finditer(plain):
        placeholder = placeholder_named(match.group(1))
        if placeholder is None:
            continue
        out.append(_literal(plain[at : match.start()]))
        out.append(placeholder.template)
        at = match.end()
    out.append(_literal(plain[at:]))
    return "".join(out)


def _literal(text: str) -> str:
    return text.replace("{", _LITERAL_BRACE)


def to_plain(template: str) -> str | None:
    """The plain text of a template, or None when it uses template code a placeholder cannot show."""
    out: list[str] = []
    at = 0
    for match in _TAG.finditer(template):
        literal = template[at : match.start()]
        if _OPENER.search(literal):  # an unclosed tag: not even a valid template
            return None
        out.append(literal)
        if match.group(1) is None:  # {% ... %} or {# ... #}
            return None
        expression = _SPACE.sub("", match.group(1))
        if match.group(1).strip() in _BRACE_EXPRESSIONS:
            out.append("{")
        else:
            placeholder = next((p for rx, p in _BY_EXPRESSION if rx.fullmatch(expression)), None)
            if placeholder is None:
                return None
            out.append(f"[{placeholder.label}]")
        at = match.end()
    rest = template[at:]
    if _OPENER.search(rest):
        return None
    out.append(rest)
    return "".join(out)


def canonical_plain(plain: str) -> str:
    """`plain` with each placeholder in its one spelling ('[Opt in key]' -> '[opt-in key]')."""

    def spell(match: re.Match[str]) -> str:
        placeholder = placeholder_named(match.group(1))
        return match.group() if placeholder is None else f"[{placeholder.label}]"

    return _BRACKETED.sub(spell, plain)
