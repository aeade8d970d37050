"""What varies by language, read from one TOML file per language in voice_scripts/locales/.

`en.toml` holds everything the service says or checks in English: the word for "and", how keys
are said, the speech rate, the opt-out words the linter looks for, the words of the recording
notice, the service's own sentences and their voice, the preview voice, and (when present) the
WhatsApp/SMS keywords, and the default script (voice_scripts/default_scripts.py). A locale
("es-MX") is read from its language's file ("es.toml"), with the entries of its `[regions."es-MX"]`
table, if any, in place of the language's.

The languages offered are the files present; the locales offered for a new business are those of
their default scripts (`offered_locales`). A missing file or entry is an error naming the file
and the entry (LanguageFileError, UnknownLanguage), never English instead. Each file is read and
checked once per folder and locale; `language_for` does no I/O after that.
"""

from __future__ import annotations

import contextlib
import re
import threading
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from voice_scripts.default_scripts import DefaultScript, checked_default_script
from voice_scripts.exceptions import LanguageFileError, UnknownLanguage, UnsupportedLocale

__all__ = [
    "DEFAULT_FOLDER",
    "Language",
    "LanguageFiles",
    "Messaging",
    "RecordingNotice",
    "SystemSpeech",
    "default_script_text",
    "language_for",
    "language_of",
    "language_files",
    "offered_languages",
    "offered_locales",
    "using_folder",
]

DEFAULT_FOLDER = Path(__file__).resolve().parent / "locales"
_MAX_LOCALE_NAMES = 1024
_LANGUAGE_TAG = re.compile(r"[a-z]{2,3}")
_LOCALE_TAG = re.compile(r"([a-z]{2,3})(-[A-Za-z0-9]{2,8})*")


@dataclass(frozen=True)
class SystemSpeech:
    """The service's own sentences, said when no script can be used, and the voice saying them."""

    voice: str
    say_language: str  # the <Say language=...> value
    withheld: str
    error: str
    rehearsal: str
    unknown_number: str


@dataclass(frozen=True)
class RecordingNotice:
    """The words of "this call is recorded" (voice_scripts.notice compares them)."""

    call: tuple[str, ...]
    recorded: tuple[str, ...]
    example: str


@dataclass(frozen=True)
class Messaging:
    """Words a person sends by WhatsApp or SMS, and the replies (str.format templates)."""

    opt_out_keywords: tuple[str, ...]
    help_keywords: tuple[str, ...]
    start_keywords: tuple[str, ...]
    opt_out_reply: str
    help_reply: str
    start_reply: str
    error_reply: str  # an opt-out that could not be recorded: never a false confirmation


@dataclass(frozen=True)
class Language:
    """Every per-language text and rule for one locale."""

    variant: str  # whose entries these are: a region with its own table ("es-MX"), else the language
    language: str
    path: Path  # the file it was read from
    and_word: str
    key_words: Mapping[str, str]  # how a key that is not a digit is said: "*" -> "star"
    words_per_second: float
    opt_out_words: re.Pattern[str]
    common_words: frozenset[str]  # for the caller-language rule, lower case
    espeak_voice: str
    system: SystemSpeech
    recording_notice: RecordingNotice
    messaging: Messaging | None
    default_script: DefaultScript

    def spoken_key(self, key: str) -> str:
        return self.key_words.get(key, key)


def language_of(locale: str) -> str:
    """The language part of a locale: 'es-MX' -> 'es'."""
    return locale.split("-")[0].lower()


# table -> entry -> the type it must have ("strs": a non-empty list of non-empty strings).
_SCHEMA: dict[str, dict[str, str]] = {
    "speech": {"and": "str", "keys": "keys", "words_per_second": "rate"},
    "system": {
        "voice": "str",
        "say_language": "str",
        "withheld": "str",
        "error": "str",
        "rehearsal": "str",
        "unknown_number": "str",
    },
    "lint": {"opt_out_words": "regex", "common_words": "strs"},
    "recording_notice": {"call": "strs", "recorded": "strs", "example": "str"},
    "preview": {"espeak_voice": "str"},
    "messaging": {
        "opt_out_keywords": "strs",
        "help_keywords": "strs",
        "start_keywords": "strs",
        "opt_out_reply": "str",
        "help_reply": "str",
        "start_reply": "str",
        "error_reply": "str",
    },
    "default_script": {"text": "script"},
}
_OPTIONAL_TABLES = frozenset({"messaging"})
# Keys spoken as words rather than as the digit itself.
_WORDED_KEYS = ("*", "#")


def _check(path: Path, where: str, kind: str, value: object) -> Any:
    """`value` checked as `kind` (see _SCHEMA), in the type Language holds it in."""

    def bad(problem: str) -> LanguageFileError:
        return LanguageFileError(path, where, problem)

    if kind == "str":
        if not isinstance(value, str) or not value.strip():
            raise bad("must be a non-empty string")
        return value
    if kind == "strs":
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str) and v.strip() for v in value)
        ):
            raise bad("must be a non-empty list of non-empty strings")
        return tuple(value)
    if kind == "rate":
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.5 <= value <= 10:
            raise bad("must be a number of words per second between 0.5 and 10")
        return float(value)
    if kind == "regex":
        if not isinstance(value, str) or not value.strip():
            raise bad("must be a non-empty regular expression")
        try:
            return re.compile(value, re.IGNORECASE)
        except re.error as exc:
            raise bad(f"is not a valid regular expression: {exc}") from exc
    if kind == "script":
        return checked_default_script(path, where, value)
    # "keys": how * and # are said
    if not isinstance(value, dict):
        raise bad('must be a table saying how "*" and "#" are said')
    missing = [k for k in _WORDED_KEYS if k not in value]
    if missing:
        raise LanguageFileError(path, f'{where}."{missing[0]}"', "is missing")
    unknown = sorted(set(value) - set(_WORDED_KEYS))
    if unknown:
        raise bad(f"has unknown entries {', '.join(unknown)} (digits are said as digits)")
    for key, word in value.items():
        _check(path, f'{where}."{key}"', "str", word)
    return MappingProxyType(dict(value))


def _tables(path: Path, raw: Mapping[str, Any], region: str | None) -> dict[str, dict[str, Any]]:
    """Every table of the file checked, with the region's entries in place of the language's."""
    overrides = raw.get("regions", {}).get(region, {}) if region else {}
    checked: dict[str, dict[str, Any]] = {}
    for table, entries in _SCHEMA.items():
        base = raw.get(table)
        if base is None and table in _OPTIONAL_TABLES:
            continue
        if not isinstance(base, dict):
            raise LanguageFileError(path, table, "is missing (a table)")
        unknown = sorted(set(base) - set(entries))
        if unknown:
            raise LanguageFileError(path, f"{table}.{unknown[0]}", "is not an entry this table has")
        values = dict(base) | dict(overrides.get(table, {}))
        checked[table] = {}
        for entry, kind in entries.items():
            if entry not in values:
                raise LanguageFileError(path, f"{table}.{entry}", "is missing")
            checked[table][entry] = _check(path, f"{table}.{entry}", kind, values[entry])
    own = overrides.get("default_script", {}).get("text") is not None
    if own and checked["default_script"]["text"].locale != region:
        where = f'regions."{region}".default_script.text'
        raise LanguageFileError(path, where, f"must be a script for {region} (its `locale`)")
    return checked


def _check_layout(path: Path, raw: Mapping[str, Any]) -> None:
    language = raw.get("language")
    if language != path.stem:
        raise LanguageFileError(path, "language", f"must be {path.stem!r}, the file's name")
    unknown = sorted(set(raw) - set(_SCHEMA) - {"language", "regions"})
    if unknown:
        raise LanguageFileError(path, unknown[0], "is not a table a language file has")
    regions = raw.get("regions", {})
    if not isinstance(regions, dict):
        raise LanguageFileError(path, "regions", 'must hold tables such as [regions."es-MX".system]')
    for region, tables in regions.items():
        where = f'regions."{region}"'
        if not _LOCALE_TAG.fullmatch(region) or language_of(region) != path.stem or "-" not in region:
            raise LanguageFileError(path, where, f"must be a locale of {path.stem!r}, e.g. {path.stem}-XX")
        if not isinstance(tables, dict):
            raise LanguageFileError(path, where, "must hold tables")
        for table, entries in tables.items():
            if table not in _SCHEMA or not isinstance(entries, dict):
                raise LanguageFileError(path, f"{where}.{table}", "is not a table a language file has")
            for entry in entries:
                if entry not in _SCHEMA[table]:
                    raise LanguageFileError(
                        path, f"{where}.{table}.{entry}", "is not an entry this table has"
                    )
        _tables(path, raw, region)


def _language(path: Path, raw: Mapping[str, Any], locale: str) -> Language:
    region = locale if locale in raw.get("regions", {}) else None
    t = _tables(path, raw, region)
    speech, system, notice = t["speech"], t["system"], t["recording_notice"]
    messaging = t.get("messaging")
    return Language(
        variant=locale,
        language=path.stem,
        path=path,
        and_word=speech["and"],
        key_words=speech["keys"],
        words_per_second=speech["words_per_second"],
        opt_out_words=t["lint"]["opt_out_words"],
        common_words=frozenset(w.casefold() for w in t["lint"]["common_words"]),
        espeak_voice=t["preview"]["espeak_voice"],
        system=SystemSpeech(**system),
        recording_notice=RecordingNotice(**notice),
        messaging=None if messaging is None else Messaging(**messaging),
        default_script=t["default_script"]["text"],
    )


class LanguageFiles:
    """The language files of one folder, each read and checked once, on first use."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._raw: dict[str, Mapping[str, Any]] = {}
        self._locales: dict[str, Language] = {}  # by the locale name asked for (a bounded shortcut)
        self._variants: dict[str, Language] = {}  # by language or region
        self._lock = threading.Lock()

    def languages(self) -> tuple[str, ...]:
        """The languages offered: the files present ('en', 'es', ...), sorted."""
        if not self.folder.is_dir():
            return ()
        return tuple(sorted(p.stem for p in self.folder.glob("*.toml") if _LANGUAGE_TAG.fullmatch(p.stem)))

    def locales(self) -> tuple[str, ...]:
        """The locales a new business may have: each file's default script's, then each region's with
        a default script of its own. A file that cannot be read or misses an entry raises its error."""
        offered: list[str] = []
        for language in self.languages():
            offered.append(self.for_locale(language).default_script.locale)
            for region in self._read(language).get("regions", {}):
                if self.for_locale(region).default_script.locale == region:
                    offered.append(region)
        return tuple(dict.fromkeys(offered))

    def _read(self, language: str) -> Mapping[str, Any]:
        raw = self._raw.get(language)
        if raw is not None:
            return raw
        path = self.folder / f"{language}.toml"
        try:
            raw = tomllib.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            raise UnknownLanguage(language, path, self.languages()) from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise LanguageFileError(path, "(file)", f"cannot be read: {exc}") from exc
        _check_layout(path, raw)
        self._raw[language] = raw
        return raw

    def for_locale(self, locale: str) -> Language:
        """The data for `locale` ('es-MX': es.toml with its es-MX entries); UnknownLanguage when its
        language has no file, LanguageFileError when the file misses an entry."""
        found = self._locales.get(locale)
        if found is not None:
            return found
        with self._lock:
            language = language_of(locale)
            if not _LANGUAGE_TAG.fullmatch(language):
                raise UnknownLanguage(language, self.folder / f"{language}.toml", self.languages())
            raw = self._read(language)
            # One Language per file and per region table, however many locale names reach here
            # (an editor's request may name any "en-..."): memory bounded by the files.
            variant = locale if locale in raw.get("regions", {}) else language
            found = self._variants.get(variant)
            if found is None:
                found = self._variants[variant] = _language(self.folder / f"{language}.toml", raw, variant)
            if len(self._locales) < _MAX_LOCALE_NAMES:
                self._locales[locale] = found
        return found


_CURRENT = LanguageFiles(DEFAULT_FOLDER)


def language_files() -> LanguageFiles:
    """The language files in use: the package's own, unless `using_folder` says otherwise."""
    return _CURRENT


def language_for(locale: str) -> Language:
    """Every per-language text and rule for `locale`, from the files in use."""
    return _CURRENT.for_locale(locale)


def offered_languages() -> tuple[str, ...]:
    """The languages with a file ('en', 'es', ...)."""
    return _CURRENT.languages()


def offered_locales() -> tuple[str, ...]:
    """The locales a new business may have ('en-US', 'es-ES', ...): those with a default script."""
    return _CURRENT.locales()


def default_script_text(locale: str) -> str:
    """The default script for a locale, as TOML text (UnsupportedLocale: none for that locale)."""
    offered = _CURRENT.locales()
    if locale not in offered:
        raise UnsupportedLocale(locale, offered)
    return _CURRENT.for_locale(locale).default_script.text


@contextlib.contextmanager
def using_folder(folder: Path) -> Iterator[LanguageFiles]:
    """Read languages from `folder` instead of the package's (a test adding a language)."""
    global _CURRENT
    before, _CURRENT = _CURRENT, LanguageFiles(folder)
    try:
        yield _CURRENT
    finally:
        _CURRENT = before
