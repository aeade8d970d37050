"""The default script of a language: the first script a new business gets in a locale.

It is the `[default_script]` table of the language's file, voice_scripts/locales/<language>.toml: the
script's TOML text (`text`), published as it is as version 1, whose `locale` is the locale offered
for new businesses ("en-US"). A region offered on its own ("es-MX") has a text of its own in
`[regions."es-MX".default_script]`. So adding a language, and the locale a business can be created
with, is one file. Checked when the file is read: never a script of another language in its place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from voice_scripts.exceptions import LanguageFileError, ScriptFormatError
from voice_scripts.model import parse_script
from voice_scripts.voices import voice_catalog

__all__ = ["DefaultScript", "checked_default_script"]


@dataclass(frozen=True)
class DefaultScript:
    """The first script a new business gets in `locale`: its TOML text, published as it is."""

    locale: str
    text: str


def checked_default_script(path: Path, where: str, value: object) -> DefaultScript:
    """`value`, the entry `where` of the language file `path`: a script's TOML text for a locale of
    that language, in a voice that speaks it (LanguageFileError naming the file and entry if not)."""
    if not isinstance(value, str) or not value.strip():
        raise LanguageFileError(path, where, "must be a script's TOML text, between triple quotes")
    try:
        script = parse_script(value)
    except ScriptFormatError as exc:
        raise LanguageFileError(path, where, f"is not a usable script: {exc.problem}") from exc
    if script.locale.split("-")[0].lower() != path.stem:
        raise LanguageFileError(
            path, where, f"is for locale {script.locale!r}, not a locale of {path.stem!r}"
        )
    if script.locale not in (voice_catalog().locales_of(script.voice) or ()):
        raise LanguageFileError(
            path,
            where,
            f"has voice {script.voice!r}, which does not speak {script.locale} "
            "(voice_scripts/data/voices.toml): a new business's script could not be published",
        )
    return DefaultScript(script.locale, value)
