"""Voice scripts: the words callers hear, per business and locale, and the policy linter.

Never imports `ivr`, Starlette or `consent_store`.
"""

from __future__ import annotations

from voice_scripts.exceptions import (
    LanguageFileError,
    ScriptError,
    ScriptFormatError,
    ScriptRenderError,
    UnknownLanguage,
    UnsupportedLocale,
)
from voice_scripts.languages import (
    Language,
    default_script_text,
    language_for,
    offered_languages,
    offered_locales,
)
from voice_scripts.lint import RULES, Finding, errors, lint_script
from voice_scripts.model import KEY_NAMES, PROMPT_NAMES, Keys, Script, parse_script
from voice_scripts.render import RenderContext, render_all, render_prompt, spoken_key, spoken_list

__all__ = [
    "KEY_NAMES",
    "Language",
    "LanguageFileError",
    "PROMPT_NAMES",
    "RULES",
    "Finding",
    "Keys",
    "RenderContext",
    "Script",
    "ScriptError",
    "ScriptFormatError",
    "ScriptRenderError",
    "UnknownLanguage",
    "UnsupportedLocale",
    "default_script_text",
    "errors",
    "language_for",
    "lint_script",
    "offered_languages",
    "offered_locales",
    "parse_script",
    "render_all",
    "render_prompt",
    "spoken_key",
    "spoken_list",
]
