"""Finding the recording notice ("this call is recorded") in a prompt, with each language's words
read from the [recording_notice] table of its file in voice_scripts/locales/.

A locale whose language has no file (or whose file is broken) has no notice words: the caller of
`notice_words` gets None and must say so, never check the prompt with another language's words.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from voice_scripts.exceptions import ScriptError
from voice_scripts.languages import language_for

__all__ = ["NoticeWords", "notice_at", "notice_words"]

# A sentence ends at . ! ? ; or : (and a Spanish one may open with ¿ or ¡).
_SENTENCE = re.compile(r"[^.!?;:¿¡]+")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class NoticeWords:
    call: frozenset[str]
    recorded: frozenset[str]
    example: str


def _plain(text: str) -> str:
    """Case and accents removed: 'Grabación' and 'grabacion' are one word."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def notice_words(locale: str) -> NoticeWords | None:
    """The notice words of the locale's language, or None if it has no (usable) file."""
    try:
        notice = language_for(locale).recording_notice
    except ScriptError:
        return None
    return NoticeWords(
        frozenset(_plain(w) for w in notice.call),
        frozenset(_plain(w) for w in notice.recorded),
        notice.example,
    )


def notice_at(text: str, words: NoticeWords) -> int | None:
    """Where the first sentence that says the call is recorded starts in `text`, or None."""
    for sentence in _SENTENCE.finditer(text):
        said = {_plain(w) for w in _WORD.findall(sentence.group())}
        if said & words.call and said & words.recorded:
            return sentence.start()
    return None
