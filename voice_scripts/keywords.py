"""Message keywords (STOP, HELP, START and their translations) and the replies to them, per
language: the [messaging] table of voice_scripts/locales/<language>.toml, as
voice_scripts/languages.py reads it, normalised and indexed here.

A keyword is matched whole after `normalise_keyword` (case, spaces, accents and
punctuation ignored), so "Stop.", " stop! " and "S T O P" are STOP; "please stop" is
no keyword. Replies are plain text filled with `str.format` from a closed set of names,
never a template engine: their values (a business name) come from outside.
Never imports `ivr`, Starlette or `consent_store`.
"""

from __future__ import annotations

import functools
import string
import unicodedata
from dataclasses import dataclass
from typing import Literal

from voice_scripts.exceptions import ScriptFormatError
from voice_scripts.languages import Messaging, language_for, offered_languages

__all__ = [
    "KEYWORD_KINDS",
    "KeywordKind",
    "KeywordMatch",
    "MessagingTexts",
    "REPLY_FIELDS",
    "ReplyKind",
    "match_keyword",
    "messaging_languages",
    "messaging_texts",
    "normalise_keyword",
]

KeywordKind = Literal["opt_out", "help", "start"]
# What a reply answers: a keyword, or "error" (an opt-out that could not be recorded).
ReplyKind = Literal["opt_out", "help", "start", "error"]
KEYWORD_KINDS: tuple[KeywordKind, ...] = ("opt_out", "help", "start")
# The only names a reply may use; filled in Python by the webhook.
REPLY_FIELDS = frozenset({"business", "message_types", "opt_out_keyword", "numbers"})
# A message longer than this is never a keyword (and is not normalised at all).
_LONGEST = 64


@dataclass(frozen=True)
class MessagingTexts(Messaging):
    """One language's keywords (normalised) and replies: its [messaging] table, checked."""

    language: str

    def keywords(self, kind: KeywordKind) -> tuple[str, ...]:
        words = {"opt_out": self.opt_out_keywords, "help": self.help_keywords, "start": self.start_keywords}
        return words[kind]

    def reply(self, kind: ReplyKind, **values: str) -> str:
        """The reply to a keyword of this kind (or the error reply), its {names} filled with `values`."""
        templates = {
            "opt_out": self.opt_out_reply,
            "help": self.help_reply,
            "start": self.start_reply,
            "error": self.error_reply,
        }
        return templates[kind].format_map(values)


@dataclass(frozen=True)
class KeywordMatch:
    kind: KeywordKind
    language: str
    keyword: str  # as written in the locale file


def normalise_keyword(text: str) -> str:
    """Upper case without spaces, accents, punctuation or symbols: what keywords are compared as."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept = []
    for char in decomposed:
        category = unicodedata.category(char)
        if category[0] in "LN":
            kept.append(char)
        # Marks (accents), punctuation, symbols, separators and controls are dropped.
    return "".join(kept).upper()


def _text(value: str, name: str, where: str) -> str:
    fields = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
    unknown = fields - REPLY_FIELDS
    if unknown:
        raise ScriptFormatError(
            f"{where}: [messaging] {name} uses {', '.join(sorted(unknown))};"
            f" allowed: {', '.join(sorted(REPLY_FIELDS))}"
        )
    return value


def _words(words: tuple[str, ...], name: str, where: str) -> tuple[str, ...]:
    normalised = tuple(normalise_keyword(w) for w in words)
    if not all(normalised):
        raise ScriptFormatError(f"{where}: [messaging] {name} holds a word with no letters or digits")
    return normalised


def _texts(language: str) -> MessagingTexts | None:
    """The language's [messaging] table, as languages.py read and checked it, normalised."""
    found = language_for(language)
    table = found.messaging
    if table is None:
        return None
    where = str(found.path)
    return MessagingTexts(
        language=language,
        opt_out_keywords=_words(table.opt_out_keywords, "opt_out_keywords", where),
        help_keywords=_words(table.help_keywords, "help_keywords", where),
        start_keywords=_words(table.start_keywords, "start_keywords", where),
        opt_out_reply=_text(table.opt_out_reply, "opt_out_reply", where),
        help_reply=_text(table.help_reply, "help_reply", where),
        start_reply=_text(table.start_reply, "start_reply", where),
        error_reply=_text(table.error_reply, "error_reply", where),
    )


@functools.cache
def _all() -> tuple[dict[str, MessagingTexts], dict[str, KeywordMatch]]:
    texts = {}
    for language in offered_languages():
        found = _texts(language)
        if found is not None:
            texts[language] = found
    index: dict[str, KeywordMatch] = {}
    for language, found in texts.items():
        for kind in KEYWORD_KINDS:
            for word in found.keywords(kind):
                other = index.get(word)
                if other is not None and other.kind != kind:
                    raise ScriptFormatError(
                        f"keyword {word!r} means {other.kind} in {other.language} and {kind} in {language}"
                    )
                index.setdefault(word, KeywordMatch(kind, language, word))
    return texts, index


def messaging_languages() -> tuple[str, ...]:
    """The languages that have a [messaging] table."""
    return tuple(_all()[0])


def messaging_texts(language: str) -> MessagingTexts | None:
    """A language's keywords and replies ('es' for 'es-ES'), or None when it has none."""
    texts = _all()[0]
    return texts.get(language) or texts.get(language.split("-")[0].lower())


def match_keyword(body: str) -> KeywordMatch | None:
    """The keyword a message is, whole (see `normalise_keyword`), or None."""
    if len(body) > _LONGEST:
        return None
    word = normalise_keyword(body)
    return _all()[1].get(word) if word else None
