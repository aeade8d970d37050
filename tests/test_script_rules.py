"""What Twilio can play: the recording notice, keys Twilio delivers, one <Say>'s limit, a voice
that speaks the locale. Each rule fires on a bad script and names where and what to do, never
fires on the default scripts; a new business's caller hears the notice before any key; and
`ivr script publish` refuses a script that breaks a rule."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from ivr.twilio.emulator import KeySource, Spoken
from tests.cli_runner import run_ivr
from tests.conftest import ACME_NUMBER, BILINGUAL_NUMBER, CALLER, Service
from voice_scripts import (
    RULES,
    default_script_text,
    lint_script,
    offered_locales,
    parse_script,
    render_prompt,
)
from voice_scripts.lint import KEY_PROMPTS
from voice_scripts.notice import notice_at, notice_words
from voice_scripts.render import RenderContext
from voice_scripts.voices import say_limit, voice_catalog

TYPES = ("delivery updates", "appointment reminders")
NEW_RULES = ("recording-notice", "keys-dtmf", "say-limit", "voice-locale", "locale-data")
EN_NOTICE = "This call is recorded as evidence of your choice.\n"
ES_NOTICE = "Esta llamada se graba como prueba de su elección.\n"
# 3,300 to 4,100 characters once rendered, as the business is "Acme" or "Acme Parcels"
LONG_EN = "Hello, thank you for calling {{ business }}. " * 90
# 2,800 characters but 3,200 bytes of UTF-8: Twilio counts single-byte characters.
LONG_ES = "Atención: ñandú, acción, canción. " * 85

Mutation = Callable[[str], str]


def _replace(old: str, new: str) -> Mutation:
    def mutate(script: str) -> str:
        assert old in script, old
        return script.replace(old, new)

    return mutate


def _both(first: Mutation, second: Mutation) -> Mutation:
    return lambda script: second(first(script))


def _lint(text: str, business: str = "Acme Parcels") -> list[tuple[str, str, str]]:
    return [
        (f.rule, f.prompt, f.message)
        for f in lint_script(parse_script(text), business, TYPES)
        if f.severity == "error"
    ]


CASES = [
    # rule, locale, mutation, where it is named, what to do
    ("recording-notice", "en-US", _replace(EN_NOTICE, ""), "consent", "This call is recorded"),
    ("recording-notice", "es-ES", _replace(ES_NOTICE, ""), "consent", "Esta llamada se graba"),
    (
        "recording-notice",
        "en-US",
        _replace("call is recorded. For English", "choice is yours. For English"),
        "language_menu",
        "before it asks for a key",
    ),
    (
        "recording-notice",
        "en-US",
        _both(
            _replace(EN_NOTICE + "You have already", "You have already"),
            _replace("you can simply hang up.", "you can simply hang up. " + EN_NOTICE.strip()),
        ),
        "subscribed",
        "only after a key: say it first",
    ),
    (
        # "your choice is recorded" is not a notice that the call is recorded
        "recording-notice",
        "en-US",
        _replace(EN_NOTICE, "Your choice will be recorded.\n"),
        "consent",
        "This call is recorded",
    ),
    (
        # an English notice does not pass in a Spanish script
        "recording-notice",
        "es-ES",
        _replace(ES_NOTICE, EN_NOTICE),
        "consent",
        "Esta llamada se graba",
    ),
    (
        # no language file for French: an error, never a check with English words
        "locale-data",
        "en-US",
        _replace('locale = "en-US"\nvoice = "Polly.Joanna"', 'locale = "fr-FR"\nvoice = "Polly.Lea"'),
        "locale",
        "No language file for 'fr': add ",
    ),
    ("keys-dtmf", "en-US", _replace('opt_in = "1"', 'opt_in = "#"'), "keys", "use 0-9 or *"),
    ("keys-dtmf", "es-ES", _replace('repeat = "*"', 'repeat = "#"'), "keys", "# ends the keypad entry"),
    ("say-limit", "en-US", _replace('goodbye = "', f'goodbye = "{LONG_EN}'), "goodbye", "at most 3,000"),
    ("say-limit", "es-ES", _replace('invalid = "', f'invalid = "{LONG_ES}'), "invalid", "bytes of UTF-8"),
    (
        "voice-locale",
        "en-US",
        _replace('"Polly.Joanna"', '"Polly.Lucia"'),
        "voice",
        "speaks es-ES, not en-US; use Polly.Ivy, Polly.Joanna",
    ),
    (
        "voice-locale",
        "es-ES",
        _replace('"Polly.Lucia"', '"Polly.Jonana"'),
        "voice",
        "not a voice Twilio offers; for es-ES use Polly.Conchita, Polly.Enrique, Polly.Lucia",
    ),
    (
        # the basic voices man and woman speak en, en-gb, es, fr and de only (Twilio's <Say> page)
        "voice-locale",
        "es-ES",
        _replace('locale = "es-ES"\nvoice = "Polly.Lucia"', 'locale = "es-MX"\nvoice = "man"'),
        "voice",
        "use Polly.Mia",
    ),
    (
        "voice-locale",
        "en-US",
        _replace('locale = "en-US"', 'locale = "en-XX"'),
        "voice",
        "no Twilio voice speaks 'en-XX'",
    ),
]


@pytest.mark.parametrize(
    ("rule", "locale", "mutate", "where", "advice"),
    CASES,
    ids=[f"{c[0]}-{c[1]}-{c[3]}-{i}" for i, c in enumerate(CASES)],
)
def test_each_rule_fires_on_a_bad_script_naming_where_and_what_to_do(
    rule: str, locale: str, mutate: Mutation, where: str, advice: str
) -> None:
    found = [f for f in _lint(mutate(default_script_text(locale))) if f[0] == rule]
    assert found, _lint(mutate(default_script_text(locale)))
    assert any(prompt == where and advice in message for _, prompt, message in found), found


@pytest.mark.parametrize("locale", offered_locales())
@pytest.mark.parametrize("rule", NEW_RULES)
def test_no_rule_fires_on_the_default_scripts(rule: str, locale: str) -> None:
    for business in ("Acme Parcels", "Pier 1 Imports", "Cloud 9 & <Sons>"):
        assert [f for f in _lint(default_script_text(locale), business) if f[0] == rule] == []


def test_every_new_rule_is_described() -> None:
    assert set(NEW_RULES) <= set(RULES)


@pytest.mark.parametrize("locale", offered_locales())
def test_default_scripts_say_the_call_is_recorded_before_any_key(locale: str) -> None:
    script = parse_script(default_script_text(locale))
    words = notice_words(locale)
    assert words is not None
    press = "press" if locale.startswith("en") else "pulse"
    for prompt in KEY_PROMPTS:
        text = render_prompt(script, prompt, RenderContext("Acme Parcels", TYPES), menu_key="1")
        notice = notice_at(text, words)
        assert notice is not None and notice < text.index(press), (prompt, text)
        if prompt != "language_menu":  # the menu says it in short: one line per language
            assert words.example in text, text


@pytest.mark.parametrize(
    ("locale", "voice"),
    [
        ("en-US", "Polly.Joanna-Neural"),
        ("en-US", "Google.en-US-Neural2-C"),
        ("en-US", "man"),  # basic voices: man and woman speak en, en-gb, es, fr, de
        ("es-ES", "woman"),
        ("es-ES", "alice"),  # alice: 26 locales (Twilio's <Say> page)
        ("es-MX", "Polly.Mia-Neural"),
        ("es-US", "Polly.Lupe"),
    ],
)
def test_a_voice_that_speaks_the_locale_passes(locale: str, voice: str) -> None:
    text = default_script_text(locale[:2] + ("-US" if locale.startswith("en") else "-ES"))
    text = re.sub(r'^locale = ".*"$', f'locale = "{locale}"', text, count=1, flags=re.M)
    text = re.sub(r'^voice = ".*"$', f'voice = "{voice}"', text, count=1, flags=re.M)
    assert _lint(text) == []


def test_the_say_limit_depends_on_the_kind_of_voice() -> None:
    # Twilio 13521: Polly 3,000, Google 5,000, basic 4,096; a voice we do not know gets the smallest.
    assert [say_limit(v) for v in ("Polly.Joanna", "Google.en-US-Standard-C", "alice", "Nobody")] == [
        3000,
        5000,
        4096,
        3000,
    ]
    google = default_script_text("en-US").replace('"Polly.Joanna"', '"Google.en-US-Standard-C"')
    long_google = google.replace('goodbye = "', f'goodbye = "{LONG_EN}')
    assert [f for f in _lint(long_google) if f[0] == "say-limit"] == []


def test_voice_data_is_consistent_with_twilio_names() -> None:
    catalog = voice_catalog()
    assert "Polly.Lucia" in catalog.voices_for("es-ES")
    assert "Polly.Joanna-Neural" in catalog.voices_for("en-US")
    assert catalog.locales_of("Polly.Aditi") == ("en-IN", "hi-IN")
    for locale, voices in catalog.by_locale.items():
        for voice in voices:
            google = re.match(r"Google\.([a-z]{2,3}-[A-Za-z]{2})-", voice)
            assert google is None or google.group(1).lower() == locale.lower(), (locale, voice)
            assert re.fullmatch(r"Polly\.\w+(-Neural|-Generative)?|Google\.[\w-]+|man|woman|alice", voice)


def _prompts_before_keys(service: Service) -> tuple[list[str], KeySource]:
    """A key source that keeps, for each key asked for, what the caller heard since the last key."""
    heard: list[str] = []
    prompts: list[str] = []

    def on_say(spoken: Spoken) -> None:
        heard.append(spoken.text)

    service.twilio.on_say = on_say
    keys = iter(["1", "1"])

    async def next_key(timeout: int) -> str:
        prompts.append(" ".join(heard))
        heard.clear()
        return next(keys, "-")

    return prompts, next_key


@pytest.mark.parametrize(
    ("number", "notice", "first_ask"),
    [
        (ACME_NUMBER, "This call is recorded as evidence of your choice.", "press"),
        (BILINGUAL_NUMBER, "Esta llamada se graba.", "pulse 1"),
    ],
)
async def test_a_new_business_caller_hears_the_recording_notice_before_the_first_key(
    service: Service, number: str, notice: str, first_ask: str
) -> None:
    prompts, next_key = _prompts_before_keys(service)
    call = await service.twilio.call(number, CALLER, next_key)
    assert call.pressed and prompts, call.transcript
    first = prompts[0]
    assert notice in first and first.index(notice) < first.index(first_ask), first
    # and so does every later prompt that asks for a key (the consent prompt after the language menu)
    for heard in prompts[1:]:
        words = notice_words("es-ES" if "pulse" in heard else "en-US")
        assert words is not None
        at, ask = notice_at(heard, words), re.search(r"\b(press|pulse)\b", heard)
        assert at is not None and ask is not None and at < ask.start(), heard


def ivr(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`ivr ARGS` in this process (tests/cli_runner.py), without IVR_*/TWILIO_* but the database."""
    return run_ivr(*args, env={"IVR_DATABASE_URL": f"sqlite:///{db}"}, drop=("IVR_", "TWILIO_"))


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("rules") / "ivr.db"
    added = ivr(db, "business", "add", "--name", "Acme", "--number", "+15550001111", "--message-type", "news")
    assert added.returncode == 0, added.stderr
    return db


@pytest.mark.parametrize(
    ("rule", "mutate"),
    [
        ("recording-notice", _replace(EN_NOTICE, "")),
        ("keys-dtmf", _replace('decline = "2"', 'decline = "#"')),
        ("say-limit", _replace('error = "', f'error = "{LONG_EN}')),
        ("voice-locale", _replace('"Polly.Joanna"', '"Polly.Lucia"')),
    ],
)
def test_ivr_script_publish_refuses_a_script_breaking_a_rule(
    database: Path, tmp_path: Path, rule: str, mutate: Mutation
) -> None:
    shown = ivr(database, "script", "show", "--business", "Acme", "--locale", "en-US")
    assert shown.returncode == 0 and "This call is recorded" in shown.stdout  # a new business: new defaults
    bad = tmp_path / "bad.toml"
    bad.write_text(mutate(shown.stdout), encoding="utf-8")
    result = ivr(database, "script", "publish", "--business", "Acme", "--locale", "en-US", str(bad))
    assert result.returncode == 1, result.stdout
    assert any(f"[{rule}]" in line for line in result.stderr.splitlines()), result.stderr
    assert "nothing was published" in result.stderr.splitlines()[-1]
    version_2 = ivr(database, "script", "show", "--business", "Acme", "--locale", "en-US", "--version", "2")
    assert version_2.returncode == 2


def _findings(text: str, business: str, types: tuple[str, ...], rule: str) -> list[tuple[str, str, str]]:
    return [
        (f.severity, f.prompt, f.message)
        for f in lint_script(parse_script(text), business, types)
        if f.rule == rule
    ]


def test_a_placeholder_the_editor_does_not_know_is_an_error_naming_it() -> None:
    text = default_script_text("en-US").replace(
        "{{ message_types | spoken_list }} on", "[mesage types] on", 1
    )
    found = _findings(text, "Acme", TYPES, "placeholders")
    assert [(s, p) for s, p, _ in found] == [("error", "consent")]
    assert "'[mesage types]' aloud" in found[0][2] and "[message types]" in found[0][2]
    # Brackets the business says itself are no placeholder; the default scripts have none.
    assert _findings(default_script_text("en-US"), "Acme [UK]", ("news [weekly]",), "placeholders") == []


@pytest.mark.parametrize(
    ("locale", "types", "names", "frequency", "expected"),
    [
        ("es-ES", ("order updates",), {}, None, [("warning", "message_types")]),
        ("es-ES", ("order updates",), {"order updates": "avisos de pedidos"}, None, []),
        (
            "es-ES",
            ("avisos de entrega",),
            {},
            "no more than four messages a month",
            [("warning", "frequency")],
        ),
        ("en-US", ("avisos de entrega",), {}, None, [("warning", "message_types")]),
        ("en-US", ("delivery updates",), {}, None, []),
        ("es-ES", ("Zumba",), {}, None, []),  # a brand name is no language's words
    ],
)
def test_message_types_and_frequency_left_in_another_language_are_a_warning(
    locale: str,
    types: tuple[str, ...],
    names: dict[str, str],
    frequency: str | None,
    expected: list[tuple[str, str]],
) -> None:
    text = default_script_text(locale)
    if names:
        table = "".join(f'"{k}" = "{v}"\n' for k, v in names.items())
        text = text.replace("[message_types]\n", f"[message_types]\n{table}", 1)
    if frequency:
        text = re.sub(r'^frequency = ".*"$', f'frequency = "{frequency}"', text, count=1, flags=re.M)
    found = _findings(text, "Tienda", types, "caller-language")
    assert [(s, p) for s, p, _ in found] == expected
    if expected:
        assert "'en' words" in found[0][2] or "'es' words" in found[0][2]
