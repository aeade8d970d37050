"""Voice scripts: the words callers hear, per business and locale, and the policy linter.

Never imports `ivr`, Starlette or `consent_store`.
"""

from __future__ import annotations

from voice_scripts.exceptions import ScriptError, ScriptFormatError, ScriptRenderError, UnsupportedLocale
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
    "PROMPT_NAMES",
    "RULES",
    "Finding",
    "Keys",
    "RenderContext",
    "Script",
    "ScriptError",
    "ScriptFormatError",
    "ScriptRenderError",
    "UnsupportedLocale",
    "default_script_text",
    "errors",
    "lint_script",
    "parse_script",
    "render_all",
    "render_prompt",
    "spoken_key",
    "spoken_list",
]
