"""The voices Twilio's <Say> accepts and the locales they speak, read from data/voices.toml.

Data only, from the sources named in that file: it never asks Twilio, and never guesses a voice's
language from another locale's (an en-US voice does not speak en-GB here).
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

__all__ = ["VoiceCatalog", "say_limit", "voice_catalog"]


@dataclass(frozen=True)
class VoiceCatalog:
    """Which voices speak which locales, and how much text one <Say> may hold per kind of voice."""

    by_locale: Mapping[str, tuple[str, ...]]
    by_voice: Mapping[str, tuple[str, ...]]
    say_limits: Mapping[str, int]

    def voices_for(self, locale: str) -> tuple[str, ...]:
        """The voices that speak `locale` (Polly first), or () when none does."""
        return self.by_locale.get(locale, ())

    def locales_of(self, voice: str) -> tuple[str, ...] | None:
        """The locales `voice` speaks; None when Twilio does not offer that voice."""
        return self.by_voice.get(voice)


def _kind(voice: str) -> str:
    if voice.startswith("Polly."):
        return "polly"
    if voice.startswith("Google."):
        return "google"
    return "basic"


@functools.cache
def voice_catalog() -> VoiceCatalog:
    """The catalog shipped with the package (read once)."""
    text = resources.files("voice_scripts").joinpath("data", "voices.toml").read_text("utf-8")
    raw = tomllib.loads(text)
    by_locale = {locale: tuple(voices) for locale, voices in raw["locales"].items()}
    by_voice: dict[str, tuple[str, ...]] = {}
    for locale, voices in by_locale.items():
        for voice in voices:
            by_voice[voice] = by_voice.get(voice, ()) + (locale,)
    return VoiceCatalog(by_locale, by_voice, dict(raw["say_limits"]))


def say_limit(voice: str) -> int:
    """The most characters one <Say> with this voice may hold; the smallest limit for a voice we do
    not know, so that a script never passes on a guess."""
    limits = voice_catalog().say_limits
    if voice_catalog().locales_of(voice) is None:
        return min(limits.values())
    return limits[_kind(voice)]
