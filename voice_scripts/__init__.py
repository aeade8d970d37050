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
from voice_scripts.languages import Language, language_for, offered_languages
from voice_scripts.lint import RULES, Finding, errors, lint_script
from voice_scripts.model import (
    DEFAULT_LOCALES,
    KEY_NAMES,
    PROMPT_NAMES,
    Keys,
    Script,
    default_script_text,
    parse_script,
)
from voice_scripts.render import RenderContext, render_all, render_prompt, spoken_key, spoken_list

__all__ = [
    "DEFAULT_LOCALES",
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
    "parse_script",
    "render_all",
    "render_prompt",
    "spoken_key",
    "spoken_list",
]
