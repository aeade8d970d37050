"""Two policy rules on the words of a script rather than its structure.

- placeholders: a prompt that would say a bracketed word aloud ('[mesage types]') holds a
  placeholder the editor does not know, usually a typing mistake (an error: the caller would hear
  the brackets' words instead of the message types).
- caller-language: a locale's message type names and frequency are in the caller's language, not
  left in another language's words ('order updates' in a Spanish prompt; a warning). The word lists
  are data: [lint] common_words in each voice_scripts/locales/<language>.toml.

Returns (rule, prompt, message) triples that voice_scripts.lint turns into findings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from voice_scripts.languages import language_for, offered_languages
from voice_scripts.model import Script
from voice_scripts.plain_text import PLACEHOLDERS, unknown_placeholders

RULES: dict[str, str] = {
    "placeholders": "no prompt says a bracketed word aloud: every [placeholder] is one the editor knows "
    "([business name], [message types], [frequency], [opt-in key], [decline key], [opt-out key], "
    "[repeat key], [menu key])",
    "caller-language": "the message types and the frequency are said in the script's language, not "
    "left in another language's words ([lint] common_words in "
    "voice_scripts/locales/<language>.toml; warning)",
}
_WORD = re.compile(r"[^\W\d_]+")


def common_words() -> Mapping[str, frozenset[str]]:
    """Each offered language's common words: [lint] common_words of its file (read once per file)."""
    return {language: language_for(language).common_words for language in offered_languages()}


def placeholder_problems(texts: Mapping[str, str], said: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """Each rendered prompt that says '[...]' aloud; what the business says itself (its name, its
    message types, the frequency) is not checked."""
    known = ", ".join(f"[{p.label}]" for p in PLACEHOLDERS)
    problems = []
    for prompt, text in texts.items():
        for phrase in said:
            if phrase:
                text = re.sub(re.escape(phrase), " ", text, flags=re.IGNORECASE)
        unknown = unknown_placeholders(text)
        if unknown:
            problems.append(
                (
                    "placeholders",
                    prompt,
                    f"would say {', '.join(repr(u) for u in unknown)} aloud: that is not a placeholder; "
                    f"use one of {known}",
                )
            )
    return problems


def language_of_words(phrase: str, own: str) -> str | None:
    """The other language `phrase` reads as (more of its words in that language's list than in
    `own`'s), or None when it reads as `own`, as nothing known, or `own` has no list."""
    lists = common_words()
    if own not in lists:
        return None
    words = [w.casefold() for w in _WORD.findall(phrase)]
    mine = sum(w in lists[own] for w in words)
    best, most = None, mine
    for language, listed in lists.items():
        count = sum(w in listed for w in words)
        if language != own and count > most:
            best, most = language, count
    return best


def caller_language_problems(script: Script, message_types: tuple[str, ...]) -> list[tuple[str, str, str]]:
    """Message type names and the frequency left in another language's words."""
    own = script.locale.split("-")[0].lower()
    problems = []
    for message_type in message_types:
        spoken = script.message_type_names.get(message_type, message_type)
        other = language_of_words(spoken, own)
        if other is not None:
            named = "has no name" if message_type not in script.message_type_names else "is named"
            problems.append(
                (
                    "caller-language",
                    "message_types",
                    f"the message type {message_type!r} {named} in {script.locale} and would be said as "
                    f"{spoken!r}, in {other!r} words: give it its {script.locale} name",
                )
            )
    other = language_of_words(script.frequency, own)
    if other is not None:
        problems.append(
            (
                "caller-language",
                "frequency",
                f"the frequency {script.frequency!r} is in {other!r} words, not {script.locale}'s: "
                "say it in the caller's language",
            )
        )
    return problems
