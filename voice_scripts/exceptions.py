"""Errors raised while reading, rendering or linting voice scripts."""

from __future__ import annotations


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
    def __init__(self, locale: str, supported: tuple[str, ...]) -> None:
        self.locale = locale
        super().__init__(f"No default script for locale {locale!r}; available: {', '.join(supported)}")
