"""Errors raised while reading, rendering or linting voice scripts."""

from __future__ import annotations

from jinja2.exceptions import SecurityError


class ScriptError(Exception):
    """Base class for every voice-script error."""


class ScriptFormatError(ScriptError):
    """A script file is not valid TOML or misses a required entry."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(f"Script file is not usable: {problem}")


class ScriptRenderError(ScriptError):
    """A prompt template failed to render (syntax error, unknown variable, sandbox refusal)."""

    def __init__(self, prompt: str, reason: str) -> None:
        self.prompt = prompt
        self.reason = reason
        super().__init__(f"Prompt {prompt!r} cannot be rendered: {reason}")


class UnsupportedLocale(ScriptError):
    """No language file has a default script for this locale (voice_scripts.languages.offered_locales)."""

    def __init__(self, locale: str, supported: tuple[str, ...]) -> None:
        self.locale = locale
        self.supported = supported
        super().__init__(f"No default script for locale {locale!r}; available: {', '.join(supported)}")


class UnknownLanguage(ScriptError):
    """A locale's language has no file in voice_scripts/locales/ (the languages offered)."""

    def __init__(self, language: str, path: object, available: tuple[str, ...]) -> None:
        self.language = language
        self.path = path
        self.available = available
        offered = ", ".join(available) or "none"
        super().__init__(f"No language file for {language!r}: add {path} (languages offered: {offered})")


class LanguageFileError(ScriptError):
    """A language file is unreadable, or an entry is missing or wrong; names the file and the entry."""

    def __init__(self, path: object, key: str, problem: str) -> None:
        self.path = path
        self.key = key
        self.problem = problem
        super().__init__(f"{path}: '{key}' {problem}")


class TemplateLimitExceeded(SecurityError):
    """A template asked for more time or space than a spoken prompt can need (voice_scripts.sandbox).

    A SecurityError, as Jinja2's sandbox raises for what a template may not do at all."""
