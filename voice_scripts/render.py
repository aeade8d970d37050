"""Rendering prompt templates to the exact text a caller hears.

Templates run in Jinja2's sandbox with undefined variables as errors, so a
manager's template can neither reach Python internals nor silently say
nothing; the sandbox also limits time and size (voice_scripts.sandbox), so a
template can never hold a call or the server, and a prompt is at most
MAX_TEXT characters. Output is plain text: the TwiML builder escapes it for XML, so a
business name like "Smith & <Sons>" can never inject SSML or markup.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import jinja2

from voice_scripts.exceptions import ScriptRenderError
from voice_scripts.languages import language_for
from voice_scripts.model import PROMPT_NAMES, Script
from voice_scripts.sandbox import LimitedSandbox, render_budget

_SPACES = re.compile(r"\s+")


def spoken_key(key: str, locale: str) -> str:
    """How a DTMF key is said in the locale's language (its file's [speech] keys): '*' is 'star' in
    English, 'asterisco' in Spanish; a digit is said as itself. UnknownLanguage or LanguageFileError
    when the language has no file or entry: never another language's word."""
    return language_for(locale).spoken_key(key)


def spoken_list(items: Sequence[str], locale: str) -> str:
    """'a, b and c' in the locale's language (its file's [speech] and)."""
    items = [str(i) for i in items]
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {language_for(locale).and_word} {items[-1]}"


@jinja2.pass_context
def _spoken_list_filter(context: jinja2.runtime.Context, items: Sequence[str]) -> str:
    return spoken_list(items, context["locale"])


@jinja2.pass_context
def _spoken_key_filter(context: jinja2.runtime.Context, key: str) -> str:
    return spoken_key(str(key), context["locale"])


def _environment() -> LimitedSandbox:
    env = LimitedSandbox(undefined=jinja2.StrictUndefined, autoescape=False)
    env.filters["spoken_list"] = _spoken_list_filter
    env.filters["spoken_key"] = _spoken_key_filter
    env.limit_filters()
    return env


_ENV = _environment()


@functools.lru_cache(maxsize=4096)
def _compile(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


@dataclass(frozen=True)
class RenderContext:
    business: str
    message_types: tuple[str, ...]


def normalise_speech(text: str) -> str:
    """Collapse the layout whitespace of multi-line templates into single spaces."""
    return _SPACES.sub(" ", text).strip()


def render_prompt(script: Script, prompt: str, context: RenderContext, menu_key: str = "") -> str:
    """The exact text spoken for one prompt; ScriptRenderError on any template failure or limit.

    It spends the budget of an enclosing render_budget(), else a budget of its own.
    """
    if prompt not in PROMPT_NAMES:
        raise ScriptRenderError(prompt, "no such prompt")
    variables = {
        "business": context.business,
        "message_types": [script.message_type_names.get(t, t) for t in context.message_types],
        "frequency": script.frequency,
        "keys": script.keys.as_dict(),
        "locale": script.locale,
        "menu_key": menu_key,
    }
    try:
        with render_budget():
            text = _compile(script.prompts[prompt]).render(variables)
    except jinja2.TemplateError as exc:
        raise ScriptRenderError(prompt, str(exc)) from exc
    except Exception as exc:  # a sandboxed template can still raise e.g. ZeroDivisionError
        raise ScriptRenderError(prompt, f"{type(exc).__name__}: {exc}") from exc
    return normalise_speech(text)


def render_all(script: Script, context: RenderContext) -> dict[str, str]:
    """Every prompt rendered (the language menu with key 1), for previews and the linter."""
    return {name: render_prompt(script, name, context, menu_key="1") for name in PROMPT_NAMES}
