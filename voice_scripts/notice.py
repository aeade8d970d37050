"""Finding the recording notice ("this call is recorded") in a prompt, with each language's words
read from data/recording_notice.toml.

A locale whose words are not in that file has no notice words: the caller of `notice_words` gets
None and must say so, never check the prompt with another language's words.
"""

from __future__ import annotations

import functools
import re
import tomllib
import unicodedata
from dataclasses import dataclass
from importlib import resources

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


@functools.cache
def _languages() -> dict[str, NoticeWords]:
    text = resources.files("voice_scripts").joinpath("data", "recording_notice.toml").read_text("utf-8")
    raw = tomllib.loads(text)["languages"]
    return {
        tag: NoticeWords(
            frozenset(_plain(w) for w in entry["call"]),
            frozenset(_plain(w) for w in entry["recorded"]),
            entry["example"],
        )
        for tag, entry in raw.items()
    }


def notice_words(locale: str) -> NoticeWords | None:
    """The notice words for a locale (itself, then its language), or None if there are none."""
    languages = _languages()
    return languages.get(locale) or languages.get(locale.split("-")[0].lower())


def notice_at(text: str, words: NoticeWords) -> int | None:
    """Where the first sentence that says the call is recorded starts in `text`, or None."""
    for sentence in _SENTENCE.finditer(text):
        said = {_plain(w) for w in _WORD.findall(sentence.group())}
        if said & words.call and said & words.recorded:
            return sentence.start()
    return None
