"""Default scripts, rendering and the policy linter, per rule and locale."""

from __future__ import annotations

import re

import pytest
from twilio.twiml.voice_response import VoiceResponse

from voice_scripts import (
    RenderContext,
    Script,
    ScriptFormatError,
    ScriptRenderError,
    default_script_text,
    lint_script,
    offered_locales,
    parse_script,
    render_prompt,
)

TYPES = ("delivery updates", "appointment reminders")
CONTEXT = RenderContext(business="Acme Parcels", message_types=TYPES)


def script_with(locale: str, **prompt_overrides: str) -> Script:
    text = default_script_text(locale)
    script = parse_script(text)
    prompts = dict(script.prompts) | prompt_overrides
    return Script(
        script.locale, script.voice, script.frequency, script.keys, prompts, script.message_type_names
    )


@pytest.mark.parametrize("locale", offered_locales())
def test_default_scripts_pass_the_linter_and_say_everything_required(locale: str) -> None:
    script = parse_script(default_script_text(locale))
    findings = lint_script(script, "Acme Parcels", TYPES)
    # English message types in a Spanish script: said as written, so the caller-language warning.
    foreign = [(f.severity, f.prompt) for f in findings if f.rule == "caller-language"]
    assert foreign == ([("warning", "message_types")] * 2 if locale == "es-ES" else [])
    assert [f for f in findings if f.rule != "caller-language"] == []
    consent = render_prompt(script, "consent", CONTEXT)
    for phrase in ("Acme Parcels", "WhatsApp", "delivery updates", "appointment reminders", script.frequency):
        assert phrase in consent
    assert re.search(r"\b9\b", consent) and re.search(r"\b1\b", consent) and re.search(r"\b2\b", consent)


SPANISH_OPT_OUT_MISSING = (
    "Hola, {{ business }}. Le enviaremos por WhatsApp {{ message_types | spoken_list }}, {{ frequency }}. "
    "Pulse {{ keys.opt_in }} para aceptar, {{ keys.decline }} para rechazar, "
    "{{ keys.repeat | spoken_key }} para repetir."
)


@pytest.mark.parametrize(
    ("locale", "consent", "rule"),
    [
        ("en-US", "Hi. Press {{ keys.opt_in }}.", "business-name"),
        ("en-US", "{{ business }} messages. Press {{ keys.opt_in }}.", "whatsapp"),
        ("en-US", "{{ business }} on WhatsApp: delivery updates. {{ frequency }}.", "message-types"),
        ("en-US", "{{ business }} on WhatsApp: {{ message_types | spoken_list }}.", "frequency"),
        (
            "en-US",
            "{{ business }} WhatsApp {{ message_types | spoken_list }} {{ frequency }}. "
            "Press {{ keys.opt_in }} to agree.",
            "keys-spoken",
        ),
        (
            "en-US",
            "{{ business }} WhatsApp {{ message_types | spoken_list }} {{ frequency }}. "
            "Press {{ keys.opt_in }}, {{ keys.decline }}, or star.",
            "opt-out",
        ),
        ("en-US", "{{ business.nope() }}", "renders"),
        ("en-US", "{{ undefined_variable }}", "renders"),
        ("es-ES", SPANISH_OPT_OUT_MISSING, "opt-out"),
        ("es-ES", "Hola. Pulse {{ keys.opt_in }}.", "business-name"),
        ("en-US", "{{ business }} WhatsApp. " * 60, "length"),
    ],
)
def test_linter_finds_each_missing_requirement(locale: str, consent: str, rule: str) -> None:
    findings = lint_script(script_with(locale, consent=consent), "Acme Parcels", TYPES)
    assert rule in {f.rule for f in findings}, findings
    finding = next(f for f in findings if f.rule == rule)
    assert finding.prompt == "consent"
    assert finding.severity == ("warning" if rule == "length" else "error")


def test_spanish_script_is_checked_with_spanish_words() -> None:
    english_opt_out = SPANISH_OPT_OUT_MISSING + " To stop, press {{ keys.opt_out }}."
    findings = lint_script(script_with("es-ES", consent=english_opt_out), "Acme Parcels", TYPES)
    assert "opt-out" in {f.rule for f in findings}
    spanish = SPANISH_OPT_OUT_MISSING + " Para dejar de recibirlos, pulse {{ keys.opt_out }}."
    assert "opt-out" not in {f.rule for f in lint_script(script_with("es-ES", consent=spanish), "X", ())}


@pytest.mark.parametrize(
    ("keys", "rule"),
    [('opt_in = "11"', "keys-dtmf"), ('opt_in = "a"', "keys-dtmf"), ('opt_in = "2"', "keys-distinct")],
)
def test_keys_must_be_distinct_single_dtmf_keys(keys: str, rule: str) -> None:
    text = default_script_text("en-US").replace('opt_in = "1"', keys)
    assert rule in {f.rule for f in lint_script(parse_script(text), "Acme Parcels", TYPES)}


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        (lambda t: t.replace("[prompts]", "[prompts\n"), "invalid TOML"),
        (lambda t: t.replace('voice = "Polly.Joanna"', ""), "'voice'"),
        (lambda t: re.sub(r"^goodbye = .*$", "", t, flags=re.M), "missing goodbye"),
        (lambda t: t.replace("[keys]", '[keys]\nhangup = "0"'), "unknown entries hangup"),
    ],
)
def test_bad_script_files_name_the_problem(mutation, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ScriptFormatError, match=message):
        parse_script(mutation(default_script_text("en-US")))


def test_templates_cannot_reach_python_internals() -> None:
    script = script_with("en-US", consent="{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(ScriptRenderError):
        render_prompt(script, "consent", CONTEXT)


def test_business_names_cannot_inject_markup_into_twiml() -> None:
    context = RenderContext(business='Smith & <Sons> "Ltd"', message_types=("offers",))
    text = render_prompt(parse_script(default_script_text("en-US")), "consent", context)
    response = VoiceResponse()
    response.say(text)
    assert "Smith &amp; &lt;Sons&gt;" in str(response) and "<Sons>" not in str(response)


def test_message_types_can_have_spoken_names_per_locale() -> None:
    text = default_script_text("es-ES").replace(
        "[message_types]", '[message_types]\n"delivery updates" = "avisos de entrega"'
    )
    consent = render_prompt(parse_script(text), "consent", RenderContext("Sol", ("delivery updates",)))
    assert "por WhatsApp avisos de entrega" in consent
