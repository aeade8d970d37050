"""A published script version as the call flow reads it, with what is rendered from it kept.

Rendering a prompt (Jinja2 in a sandbox) and splitting it into what is heard whole and the key
instructions (ivr.twilio.disclosure) cost far more than a reply's other work, and a version never
changes: so its texts are rendered once per business and kept with the version, here, outside
the call flow, which only asks for them (`prompt_text`, `hearing_of`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consent_store import Business
from ivr.twilio.disclosure import Hearing, split_prompt
from ivr.twilio.twiml_writer import Speech
from voice_scripts import RenderContext, Script, render_prompt


@dataclass(frozen=True)
class LoadedScript:
    """A parsed script version. What is rendered from it is kept with it: a version never changes."""

    script: Script
    version: int
    # (business, message types, prompt, menu key) -> text; ("hearing", ...) -> a Hearing's record
    memo: dict[tuple[object, ...], str] = field(default_factory=dict, compare=False, repr=False)
    # (business, message types, prompt, menu key) -> the text as said in the script's voice
    speech: dict[tuple[object, ...], Speech] = field(default_factory=dict, compare=False, repr=False)


def prompt_text(loaded: LoadedScript, business: Business, prompt: str, menu_key: str = "") -> str:
    """The exact text of `prompt` for this business (ScriptRenderError if it cannot be rendered)."""
    key = (business.name, business.message_types, prompt, menu_key)
    text = loaded.memo.get(key)
    if text is None:
        context = RenderContext(business=business.name, message_types=business.message_types)
        text = loaded.memo[key] = render_prompt(loaded.script, prompt, context, menu_key=menu_key)
    return text


def hearing_of(loaded: LoadedScript, business: Business, step: str) -> Hearing:
    """The `step` prompt (consent or subscribed) as disclosure and key instructions."""
    key = ("hearing", business.name, business.message_types, step)
    record = loaded.memo.get(key)
    if record is None:
        text = prompt_text(loaded, business, step)
        hearing = split_prompt(text, loaded.script, business.name, business.message_types, step)
        record = loaded.memo[key] = hearing.record
    return Hearing.from_record(record)


def prompt_speech(loaded: LoadedScript, business: Business, prompt: str, menu_key: str = "") -> Speech:
    """The prompt's text as said in the script's voice and language (one object per version)."""
    key = (business.name, business.message_types, prompt, menu_key)
    said = loaded.speech.get(key)
    if said is None:
        text = prompt_text(loaded, business, prompt, menu_key)
        said = loaded.speech[key] = Speech(text, loaded.script.voice, loaded.script.language)
    return said
