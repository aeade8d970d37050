"""The WhatsApp opt-in policy linter, run on the rendered text of every prompt.

It encodes shared/policy/whatsapp-opt-in-policy.txt: the consent prompt must
name the business and WhatsApp (required), and should name each message type,
the frequency, and how to opt out; every key it accepts must be spoken.
Errors block publishing; warnings do not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from voice_scripts.exceptions import ScriptRenderError
from voice_scripts.model import DTMF_KEYS, KEY_NAMES, PROMPT_NAMES, Script
from voice_scripts.render import RenderContext, render_prompt, spoken_key
from voice_scripts.sandbox import render_budget

Severity = Literal["error", "warning"]

# Words per second at a normal speech rate, by language.
_WORDS_PER_SECOND = {"en": 2.5, "es": 2.7}
MAX_PROMPT_SECONDS = 45.0

_OPT_OUT_WORDS = {
    "en": r"\b(stop|opt out|unsubscribe)\b",
    "es": r"(dejar de recibir|darse de baja|dar(se)? de baja|cancelar)",
}

RULES: dict[str, str] = {
    "keys-dtmf": "each key is one DTMF key: 0-9, * or #",
    "keys-distinct": "opt_in, decline, opt_out and repeat are four different keys",
    "renders": "every prompt renders without a template error",
    "business-name": "the consent prompt says the business name",
    "whatsapp": "the consent prompt says that messages come over WhatsApp",
    "message-types": "the consent prompt names every message type",
    "frequency": "the consent prompt states the expected frequency",
    "opt-out": "the consent and subscribed prompts say how to opt out, with the opt-out key",
    "keys-spoken": "the consent prompt speaks every key it accepts",
    "length": "no prompt takes longer than about 45 seconds to say (warning)",
}


@dataclass(frozen=True)
class Finding:
    severity: Severity
    rule: str
    prompt: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: [{self.rule}] prompt '{self.prompt}': {self.message}"


def _lang(script: Script) -> str:
    return script.locale.split("-")[0].lower()


def _says(text: str, phrase: str) -> bool:
    return phrase.casefold() in text.casefold()


def _says_key(text: str, key: str, locale: str) -> bool:
    word = spoken_key(key, locale)
    if word != key:
        return re.search(rf"\b{re.escape(word)}\b", text, re.IGNORECASE) is not None
    return re.search(rf"(?<![0-9]){re.escape(key)}(?![0-9])", text) is not None


def _key_findings(script: Script) -> list[Finding]:
    findings = []
    keys = script.keys.as_dict()
    for name in KEY_NAMES:
        if len(keys[name]) != 1 or keys[name] not in DTMF_KEYS:
            findings.append(
                Finding("error", "keys-dtmf", "keys", f"key {name} is {keys[name]!r}; use one of 0-9, * or #")
            )
    if len(set(keys.values())) != len(keys):
        findings.append(Finding("error", "keys-distinct", "keys", f"keys must differ, got {keys}"))
    return findings


def lint_script(script: Script, business: str, message_types: tuple[str, ...]) -> list[Finding]:
    """All findings for a script as it would be spoken for this business."""
    findings = _key_findings(script)
    context = RenderContext(business=business, message_types=message_types)
    texts: dict[str, str] = {}
    # One budget for the whole script: a script the linter passes renders within it at call time,
    # where each prompt has a budget of its own.
    with render_budget() as budget:
        for prompt in PROMPT_NAMES:
            if budget.exhausted:  # reported on the prompt that spent it; the rest are not rendered
                break
            try:
                texts[prompt] = render_prompt(script, prompt, context, menu_key="1")
            except ScriptRenderError as exc:
                findings.append(Finding("error", "renders", prompt, exc.reason))
    lang = _lang(script)
    consent = texts.get("consent")
    if consent is not None:
        findings += _consent_findings(script, business, message_types, consent)
    opt_out_words = _OPT_OUT_WORDS.get(lang, _OPT_OUT_WORDS["en"])
    for prompt in ("consent", "subscribed"):
        text = texts.get(prompt)
        if text is None:
            continue
        if not re.search(opt_out_words, text, re.IGNORECASE) or not _says_key(
            text, script.keys.opt_out, script.locale
        ):
            key = spoken_key(script.keys.opt_out, script.locale)
            findings.append(
                Finding(
                    "error",
                    "opt-out",
                    prompt,
                    f"must say how to stop the messages and the opt-out key '{key}'",
                )
            )
    rate = _WORDS_PER_SECOND.get(lang, 2.5)
    for prompt, text in texts.items():
        seconds = len(text.split()) / rate
        if seconds > MAX_PROMPT_SECONDS:
            findings.append(
                Finding(
                    "warning",
                    "length",
                    prompt,
                    f"takes about {seconds:.0f} s to say; keep it under {MAX_PROMPT_SECONDS:.0f} s",
                )
            )
    return findings


def _consent_findings(
    script: Script, business: str, message_types: tuple[str, ...], text: str
) -> list[Finding]:
    findings = []
    if not _says(text, business):
        findings.append(
            Finding("error", "business-name", "consent", f"must say the business name {business!r}")
        )
    if not _says(text, "WhatsApp"):
        findings.append(Finding("error", "whatsapp", "consent", "must say that messages come over WhatsApp"))
    for message_type in message_types:
        spoken = script.message_type_names.get(message_type, message_type)
        if not _says(text, spoken):
            findings.append(
                Finding("error", "message-types", "consent", f"must name the message type {spoken!r}")
            )
    if not _says(text, script.frequency):
        findings.append(
            Finding("error", "frequency", "consent", f"must state the frequency {script.frequency!r}")
        )
    for name in ("opt_in", "decline", "repeat"):
        key = getattr(script.keys, name)
        if not _says_key(text, key, script.locale):
            findings.append(
                Finding(
                    "error",
                    "keys-spoken",
                    "consent",
                    f"must tell the caller to press '{spoken_key(key, script.locale)}' ({name})",
                )
            )
    return findings


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]
