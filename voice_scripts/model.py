"""The voice-script model: one business's words in one locale, read from TOML.

A script is data only; it never talks to a database or the web.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass

from voice_scripts.exceptions import ScriptFormatError

PROMPT_NAMES: tuple[str, ...] = (
    "language_menu",
    "consent",
    "subscribed",
    "confirmed",
    "declined",
    "opted_out",
    "invalid",
    "no_input",
    "goodbye",
    "error",
)
KEY_NAMES: tuple[str, ...] = ("opt_in", "decline", "opt_out", "repeat")
DTMF_KEYS = frozenset("0123456789*#")


@dataclass(frozen=True)
class Keys:
    opt_in: str = "1"
    decline: str = "2"
    opt_out: str = "9"
    repeat: str = "*"

    def as_dict(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in KEY_NAMES}


@dataclass(frozen=True)
class Script:
    """What callers hear in one locale: prompt templates, keys, voice, promised frequency."""

    locale: str
    voice: str
    frequency: str
    keys: Keys
    prompts: Mapping[str, str]
    message_type_names: Mapping[str, str]

    @property
    def language(self) -> str:
        """The <Say language=...> value."""
        return self.locale


def _text_table(raw: Mapping[str, object], name: str, what: str) -> dict[str, str]:
    """The script's table `name` (absent: empty), every value a string; else "[name] must map `what`"."""
    table = raw.get(name, {})
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise ScriptFormatError(f"[{name}] must map {what}")
    return table


def _refuse_unknown(table: Mapping[str, object], name: str, known: tuple[str, ...]) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise ScriptFormatError(f"[{name}] has unknown entries {', '.join(unknown)}")


def parse_script(text: str) -> Script:
    """Read a script from its TOML text; ScriptFormatError names what is wrong."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScriptFormatError(f"invalid TOML: {exc}") from exc
    for name in ("locale", "voice", "frequency"):
        if not isinstance(raw.get(name), str) or not raw[name].strip():
            raise ScriptFormatError(f"'{name}' must be a non-empty string")
    prompts = raw.get("prompts")
    if not isinstance(prompts, dict):
        raise ScriptFormatError("a [prompts] table is required")
    missing = [p for p in PROMPT_NAMES if not isinstance(prompts.get(p), str)]
    if missing:
        raise ScriptFormatError(f"[prompts] is missing {', '.join(missing)}")
    _refuse_unknown(prompts, "prompts", PROMPT_NAMES)
    keys_raw = _text_table(raw, "keys", "opt_in, decline, opt_out, repeat to keys")
    _refuse_unknown(keys_raw, "keys", KEY_NAMES)
    names = _text_table(raw, "message_types", "message types to spoken names")
    return Script(
        locale=raw["locale"].strip(),
        voice=raw["voice"].strip(),
        frequency=raw["frequency"].strip(),
        keys=Keys(**keys_raw),
        prompts={name: prompts[name] for name in PROMPT_NAMES},
        message_type_names=dict(names),
    )
