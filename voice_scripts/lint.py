"""The WhatsApp opt-in policy linter, run on the rendered text of every prompt.

It encodes shared/policy/whatsapp-opt-in-policy.txt: the consent prompt must
name the business and WhatsApp (required), and should name each message type,
the frequency, and how to opt out; every key it accepts must be spoken.
And what Twilio can play: a key Twilio can deliver, a prompt within one <Say>'s
limit, a voice that speaks the script's locale, and the notice that the call
is recorded before any key is asked for (the call is recorded from its start).
Errors block publishing; warnings do not. What varies by language (the opt-out
words, the notice's words, the speech rate, how keys are said) is data in
voice_scripts/locales/<language>.toml, and the voices in voice_scripts/data/:
a script whose language has no file, or a file missing an entry, is a
`locale-data` error, never checked with English words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from voice_scripts.exceptions import ScriptError, ScriptRenderError
from voice_scripts.languages import language_for
from voice_scripts.lint_words import RULES as WORD_RULES
from voice_scripts.lint_words import caller_language_problems, placeholder_problems
from voice_scripts.model import DTMF_KEYS, KEY_NAMES, PROMPT_NAMES, Script
from voice_scripts.notice import notice_at, notice_words
from voice_scripts.render import RenderContext, render_prompt, spoken_key
from voice_scripts.sandbox import render_budget
from voice_scripts.voices import say_limit, voice_catalog

Severity = Literal["error", "warning"]

MAX_PROMPT_SECONDS = 45.0

# <Gather> ends the input at finishOnKey, "#" by default (https://www.twilio.com/docs/voice/twiml/gather,
# attributes table: "finishOnKey | 0-9, #, * and '' (the empty string) | #"), and the key is not
# part of Digits; the page notes that finishOnKey only works after a sequence of digits and cannot
# stop a <Gather> without prior digit input (es-MX page: "finishOnKey solo funciona cuando una
# secuencia de dígitos la precede"). So a "#" pressed alone never reaches us as a choice. Our
# Gathers keep the default (ivr/twilio/call_flow.py), so "#" can be no key.
KEY_HASH_MESSAGE = "# ends the keypad entry on Twilio and cannot be a choice; use 0-9 or *"
CHOICE_KEYS = DTMF_KEYS - {"#"}
# The prompts that ask for a key: the notice that the call is recorded must come before the keys.
KEY_PROMPTS: tuple[str, ...] = ("language_menu", "consent", "subscribed")

RULES: dict[str, str] = {
    "keys-dtmf": "each key is one DTMF key Twilio delivers: 0-9 or * (# ends the keypad entry)",
    "keys-distinct": "opt_in, decline, opt_out and repeat are four different keys",
    "renders": "every prompt renders without a template error",
    "business-name": "the consent prompt says the business name",
    "whatsapp": "the consent prompt says that messages come over WhatsApp",
    "message-types": "the consent prompt names every message type",
    "frequency": "the consent prompt states the expected frequency",
    "opt-out": "the consent and subscribed prompts say how to opt out, with the opt-out key",
    "keys-spoken": "the consent prompt speaks every key it accepts",
    "recording-notice": "the language menu, consent and subscribed prompts say that the call is "
    "recorded before any key (the words in the [recording_notice] of voice_scripts/locales/<language>.toml)",
    "say-limit": "every prompt fits in one Twilio <Say> once rendered: 3,000 characters with Polly "
    "voices (Google 5,000, basic 4,096)",
    "voice-locale": "the voice is one Twilio offers and it speaks the script's locale "
    "(voice_scripts/data/voices.toml)",
    "length": "no prompt takes longer than about 45 seconds to say (warning)",
    "locale-data": "the script's language has a file in voice_scripts/locales/ with every entry (how keys "
    "and lists are said, opt-out and notice words, speech rate, system sentences)",
}
RULES.update(WORD_RULES)  # placeholders, caller-language (voice_scripts/lint_words.py)


@dataclass(frozen=True)
class Finding:
    severity: Severity
    rule: str
    prompt: str
    message: str

    def __str__(self) -> str:
        where = f"prompt '{self.prompt}'" if self.prompt in PROMPT_NAMES else self.prompt
        return f"{self.severity}: [{self.rule}] {where}: {self.message}"


def _says(text: str, phrase: str) -> bool:
    return phrase.casefold() in text.casefold()


def _key_said_at(text: str, key: str, locale: str) -> int | None:
    """Where `key` is first said in `text` ('star' for *, a digit not inside a number), or None."""
    word = spoken_key(key, locale)
    if word != key:
        found = re.search(rf"\b{re.escape(word)}\b", text, re.IGNORECASE)
    else:
        found = re.search(rf"(?<![0-9]){re.escape(key)}(?![0-9])", text)
    return found.start() if found else None


def _says_key(text: str, key: str, locale: str) -> bool:
    return _key_said_at(text, key, locale) is not None


def _key_findings(script: Script) -> list[Finding]:
    findings = []
    keys = script.keys.as_dict()
    for name in KEY_NAMES:
        if keys[name] == "#":
            findings.append(Finding("error", "keys-dtmf", "keys", f"key {name} is '#': {KEY_HASH_MESSAGE}"))
        elif len(keys[name]) != 1 or keys[name] not in CHOICE_KEYS:
            findings.append(
                Finding("error", "keys-dtmf", "keys", f"key {name} is {keys[name]!r}; use one of 0-9 or *")
            )
    if len(set(keys.values())) != len(keys):
        findings.append(Finding("error", "keys-distinct", "keys", f"keys must differ, got {keys}"))
    return findings


def lint_script(script: Script, business: str, message_types: tuple[str, ...]) -> list[Finding]:
    """All findings for a script as it would be spoken for this business."""
    findings = _key_findings(script)
    try:
        language = language_for(script.locale)
    except ScriptError as exc:
        # Nothing else can be checked without the language's words: never with English ones.
        message = f"{exc}; see 'Adding a language' in docs/managers.md"
        return [*findings, Finding("error", "locale-data", "locale", message), *_voice_findings(script)]
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
    consent = texts.get("consent")
    if consent is not None:
        findings += _consent_findings(script, business, message_types, consent)
    for prompt in ("consent", "subscribed"):
        text = texts.get(prompt)
        if text is None:
            continue
        if not language.opt_out_words.search(text) or not _says_key(text, script.keys.opt_out, script.locale):
            key = spoken_key(script.keys.opt_out, script.locale)
            findings.append(
                Finding(
                    "error",
                    "opt-out",
                    prompt,
                    f"must say how to stop the messages and the opt-out key '{key}'",
                )
            )
    findings += _notice_findings(script, texts, (business, *_spoken_types(script, message_types)))
    findings += _say_limit_findings(script, texts)
    findings += _voice_findings(script)
    said = (business, *_spoken_types(script, message_types), script.frequency)
    findings += [Finding("error", *p) for p in placeholder_problems(texts, said)]
    findings += [Finding("warning", *p) for p in caller_language_problems(script, message_types)]
    for prompt, text in texts.items():
        seconds = len(text.split()) / language.words_per_second
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


def _spoken_types(script: Script, message_types: tuple[str, ...]) -> list[str]:
    return [script.message_type_names.get(t, t) for t in message_types]


def _blank(text: str, phrases: tuple[str, ...]) -> str:
    """`text` with each phrase blanked out, same length: a '1' in a business name is no key."""
    for phrase in phrases:
        if phrase:
            text = re.sub(re.escape(phrase), lambda m: " " * len(m.group()), text, flags=re.IGNORECASE)
    return text


def _notice_findings(script: Script, texts: dict[str, str], names: tuple[str, ...]) -> list[Finding]:
    """Each prompt that asks for a key says that the call is recorded, before its first key."""
    words = notice_words(script.locale)
    if words is None:
        return [
            Finding(
                "error",
                "recording-notice",
                "locale",
                f"there are no words for 'this call is recorded' in {script.locale!r}, so no prompt can "
                "be checked for the notice: add them to voice_scripts/locales/<language>.toml",
            )
        ]
    findings = []
    for prompt in KEY_PROMPTS:
        text = texts.get(prompt)
        if text is None:
            continue
        keys = ("1",) if prompt == "language_menu" else tuple(script.keys.as_dict().values())
        plain = _blank(text, (*names, script.frequency))
        said = [at for key in keys if (at := _key_said_at(plain, key, script.locale)) is not None]
        first_key = min(said, default=len(text))
        notice = notice_at(text, words)
        if notice is None:
            problem = "must say that the call is recorded before it asks for a key"
        elif notice > first_key:
            problem = "says that the call is recorded only after a key: say it first"
        else:
            continue
        findings.append(Finding("error", "recording-notice", prompt, f"{problem}, e.g. {words.example!r}"))
    return findings


def _say_limit_findings(script: Script, texts: dict[str, str]) -> list[Finding]:
    """Each prompt fits in one <Say>. Twilio counts "UTF-8 single byte characters", so we count
    UTF-8 bytes: an accented letter counts twice, and a prompt that passes here fits there."""
    limit = say_limit(script.voice)
    findings = []
    for prompt, text in texts.items():
        size = len(text.encode("utf-8"))
        if size > limit:
            findings.append(
                Finding(
                    "error",
                    "say-limit",
                    prompt,
                    f"is {len(text):,} characters ({size:,} bytes of UTF-8) once rendered; one Twilio <Say> "
                    f"with voice {script.voice!r} holds at most {limit:,}: shorten it",
                )
            )
    return findings


def _voice_list(locale: str) -> str:
    voices = voice_catalog().voices_for(locale)
    shown = [v for v in voices if v.startswith("Polly.")][:8] or list(voices[:8])
    more = len(voices) - len(shown)
    listed = ", ".join(shown)
    return listed + (f" (or one of {more} more in voice_scripts/data/voices.toml)" if more else "")


def _voice_findings(script: Script) -> list[Finding]:
    """The voice is one Twilio offers, and it speaks the script's locale."""
    catalog = voice_catalog()
    locale, voice = script.locale, script.voice
    speaks = catalog.locales_of(voice)
    if speaks is not None and locale in speaks:
        return []
    if not catalog.voices_for(locale):
        message = (
            f"no Twilio voice speaks {locale!r} (voice_scripts/data/voices.toml): use a locale "
            "Twilio can speak, e.g. en-US or es-ES"
        )
    elif speaks is None:
        message = f"{voice!r} is not a voice Twilio offers; for {locale} use {_voice_list(locale)}"
    else:
        message = f"{voice!r} speaks {', '.join(speaks)}, not {locale}; use {_voice_list(locale)}"
    return [Finding("error", "voice-locale", "voice", message)]


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
