"""What a caller must hear whole before a key counts: a prompt split into disclosure and key instructions.

Twilio stops a <Gather>'s nested <Say> at the first digit ("After the first digit is
received the audio will stop playing", https://www.twilio.com/docs/api/twiml/gather), so
words inside the Gather may never have been heard. The disclosure (that the call is
recorded, the business, WhatsApp, each message type, the frequency and how to opt out) is
therefore said outside the Gather, where nothing cuts it, and only the sentences that ask
for a decision key go inside. A prompt that cannot be split so that every one of those facts
comes before its first decision key is said outside the Gather whole.

Pure: never builds TwiML and never fails on a script it cannot split (it falls back to "all
of it is disclosure", the safe side).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from voice_scripts import Script
from voice_scripts.notice import notice_at, notice_words
from voice_scripts.render import spoken_key

# A sentence and the spaces after it: the prompt is cut only between sentences.
_SENTENCE = re.compile(r"[^.!?]+[.!?]*\s*")
# Between the disclosure and the key instructions in the recorded text: rendered prompts never
# hold a line break (voice_scripts.render.normalise_speech), so an older record has none.
SEPARATOR = "\n"


@dataclass(frozen=True)
class Hearing:
    """A prompt as it is played: `disclosure` outside the Gather, `instructions` inside it."""

    disclosure: str
    instructions: str

    @property
    def record(self) -> str:
        """The text a decision records: the disclosure, a line break, the key instructions."""
        return f"{self.disclosure}{SEPARATOR}{self.instructions}"

    @classmethod
    def from_record(cls, recorded: str) -> Hearing:
        disclosure, _, instructions = recorded.partition(SEPARATOR)
        return cls(disclosure, instructions)


def _key_said(text: str, key: str, locale: str) -> bool:
    """Whether `key` is said in `text` ('star' for *, a digit not inside a number)."""
    word = spoken_key(key, locale)
    if word != key:
        return re.search(rf"\b{re.escape(word)}\b", text, re.IGNORECASE) is not None
    return re.search(rf"(?<![0-9]){re.escape(key)}(?![0-9])", text) is not None


def _blank(text: str, phrases: tuple[str, ...]) -> str:
    """`text` with each phrase blanked, same length: a '1' in 'Pier 1 Imports' is no key."""
    for phrase in phrases:
        if phrase:
            text = re.sub(re.escape(phrase), lambda m: " " * len(m.group()), text, flags=re.IGNORECASE)
    return text


def _discloses(text: str, script: Script, business: str, types: tuple[str, ...], step: str) -> bool:
    """Whether `text` says every fact a caller must hear before a decision key counts."""
    folded = text.casefold()
    words = notice_words(script.locale)
    facts = [business, "WhatsApp", script.frequency, *types]
    if words is None or notice_at(text, words) is None or not all(f.casefold() in folded for f in facts):
        return False
    # Before opting in, how to opt out later; before opting out, that key is the decision itself.
    plain = _blank(text, (business, script.frequency, *types))
    return step != "consent" or _key_said(plain, script.keys.opt_out, script.locale)


def split_prompt(
    text: str, script: Script, business: str, message_types: tuple[str, ...], step: str
) -> Hearing:
    """`text` (the rendered consent or subscribed prompt) as disclosure and key instructions."""
    types = tuple(script.message_type_names.get(t, t) for t in message_types)
    keys = script.keys
    decision_keys = (
        (keys.opt_in, keys.decline, keys.repeat) if step == "consent" else (keys.opt_out, keys.repeat)
    )
    for sentence in _SENTENCE.finditer(text):
        plain = _blank(sentence.group(), (business, script.frequency, *types))
        if any(_key_said(plain, key, script.locale) for key in decision_keys):
            disclosure, instructions = text[: sentence.start()].strip(), text[sentence.start() :].strip()
            if disclosure and _discloses(disclosure, script, business, types, step):
                return Hearing(disclosure, instructions)
            break
    return Hearing(text, "")


def heard_parts(recorded: str) -> tuple[str, str] | None:
    """(disclosure, instructions) of a decision's recorded text, or None for a record made
    before the disclosure was said outside the Gather (its text holds no separator)."""
    disclosure, separator, instructions = recorded.partition(SEPARATOR)
    return (disclosure, instructions) if separator else None
