"""The script form: plain text with placeholders and templates convert both ways for any text, the
form writes into the same TOML the Advanced view shows, keys cannot clash, and each policy finding
names its box."""

from __future__ import annotations

import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.pages.script_form import (
    apply_form,
    box_of,
    describe,
    form_from_fields,
    form_problems,
    read_form,
    voice_choices,
)
from voice_scripts import Finding, default_script_text, lint_script, parse_script, render_prompt
from voice_scripts.plain_text import (
    PLACEHOLDERS,
    canonical_plain,
    to_plain,
    to_template,
    unknown_placeholders,
)
from voice_scripts.render import RenderContext, normalise_speech

TYPES = ("order updates", "delivery reminders")
LABELS = [f"[{p.label}]" for p in PLACEHOLDERS]
# Text a manager might type: words, brackets, braces, Jinja openers, quotes, newlines, placeholders
# spelt in other cases, and any other character.
pieces = st.one_of(
    st.text(max_size=12),
    st.sampled_from(LABELS),
    st.sampled_from(["[Message Types]", "[opt in key]", "[ business  name ]", "[mesage types]"]),
    st.sampled_from(["{{", "}}", "{%", "%}", "{#", "#}", "{", "}", "[", "]", '"""', "\\", "'", "\n", "\r"]),
)
plain_texts = st.lists(pieces, max_size=12).map("".join)


@given(plain_texts)
@settings(max_examples=400, deadline=None)
def test_any_plain_text_survives_the_round_trip_through_a_template(plain: str) -> None:
    assert to_plain(to_template(plain)) == canonical_plain(plain)
    assert canonical_plain(canonical_plain(plain)) == canonical_plain(plain)


@given(plain_texts)
@settings(max_examples=200, deadline=None)
def test_a_plain_text_is_spoken_as_written_with_each_placeholder_said(plain: str) -> None:
    script = parse_script(default_script_text("en-US"))
    script = script.__class__(
        **{**script.__dict__, "prompts": {**script.prompts, "consent": to_template(plain)}}
    )
    spoken = render_prompt(script, "consent", RenderContext("Acme & Sons", TYPES), menu_key="1")
    expected = canonical_plain(plain)
    said = {
        "[business name]": "Acme & Sons",
        "[message types]": "order updates and delivery reminders",
        "[frequency]": script.frequency,
        "[opt-in key]": "1",
        "[decline key]": "2",
        "[opt-out key]": "9",
        "[repeat key]": "star",
        "[menu key]": "1",
    }
    for label, words in said.items():
        expected = expected.replace(label, words)
    assert spoken == normalise_speech(expected)


@pytest.mark.parametrize(
    "template",
    [
        "{% if business %}Hi{% endif %}",
        "{{ business | upper }}",
        "{# a comment #}Hello",
        "Hello {{ business",
        "{{- business }}",
        "{{ keys.opt_in }}",
    ],
)
def test_template_code_the_form_cannot_show_has_no_plain_form(template: str) -> None:
    assert to_plain(template) is None


def test_the_default_prompts_all_read_as_plain_text_with_placeholders() -> None:
    for locale in ("en-US", "es-ES"):
        form = read_form(default_script_text(locale), TYPES)
        assert all(p is not None for p in form.prompts.values())
        consent = form.prompts["consent"] or ""
        assert "[message types]" in consent and "[opt-out key]" in consent and "{{" not in consent


def test_unknown_placeholders_are_found_as_written() -> None:
    assert unknown_placeholders("Hi [Business Name], [mesage types] and [frequency]") == ["[mesage types]"]


def test_the_form_writes_into_the_same_toml_and_keeps_what_it_did_not_change() -> None:
    text = default_script_text("es-ES")
    form = read_form(text, TYPES)
    fields = {
        "prompt.declined": "De acuerdo, [business name]. Adiós.",
        "type.order updates": "avisos de pedidos",
        "frequency": "como mucho dos mensajes al mes",
        "key.repeat": "0",
    }
    new = apply_form(text, form_from_fields(fields, form))
    script = parse_script(new)
    assert script.prompts["declined"] == "De acuerdo, {{ business }}. Adiós."
    assert script.message_type_names == {"order updates": "avisos de pedidos"}
    assert script.frequency == "como mucho dos mensajes al mes" and script.keys.repeat == "0"
    # Untouched prompts and the comments keep their exact text.
    assert script.prompts["consent"] == parse_script(text).prompts["consent"]
    assert "# Guion de consentimiento" in new and text.split("[prompts]")[1].split("declined")[0] in new
    # And the TOML view reads back what the form wrote.
    assert read_form(new, TYPES).prompts["declined"] == fields["prompt.declined"]
    assert read_form(new, TYPES).type_names["order updates"] == "avisos de pedidos"
    # A blank name removes it: the type is said as written again.
    again = apply_form(new, form_from_fields({"type.order updates": ""}, read_form(new, TYPES)))
    assert parse_script(again).message_type_names == {}


@given(st.text(max_size=200))
@settings(max_examples=200, deadline=None)
def test_any_prompt_text_is_stored_as_valid_toml_and_read_back(plain: str) -> None:
    text = default_script_text("en-US")
    form = form_from_fields({"prompt.goodbye": plain}, read_form(text, TYPES))
    new = apply_form(text, form)
    tomllib.loads(new)
    stored = parse_script(new).prompts["goodbye"]
    expected = plain.replace("\r\n", "\n").replace("\r", "\n").strip()
    if expected != (read_form(text, TYPES).prompts["goodbye"] or "").strip():
        assert stored == to_template(expected)


@pytest.mark.parametrize(
    ("fields", "box", "words"),
    [
        ({"key.opt_out": "1"}, "key-opt_out", "1 is already the opt-in key"),
        ({"key.repeat": "2"}, "key-repeat", "2 is already the decline key"),
        ({"key.decline": "#"}, "key-decline", "is not a key"),
        ({"key.opt_in": "12"}, "key-opt_in", "is not a key"),
        ({"frequency": "  "}, "frequency", "how often"),
        ({"voice": ""}, "voice", "choose a voice"),
        ({"prompt.consent": "x" * 6001}, "prompt-consent", "6,000 at most"),
    ],
)
def test_the_form_refuses_clashing_keys_and_empty_fields_in_words(
    fields: dict[str, str], box: str, words: str
) -> None:
    form = form_from_fields(fields, read_form(default_script_text("en-US"), TYPES))
    problems = form_problems(form)
    assert [p.box for p in problems] == [box]
    assert words in str(problems[0])


def test_a_default_form_has_no_problems() -> None:
    assert form_problems(read_form(default_script_text("en-US"), TYPES)) == []


def test_each_policy_finding_names_the_box_it_concerns() -> None:
    text = default_script_text("en-US").replace("You can stop these WhatsApp messages at any time: ", "")
    text = text.replace("call this number again and press {{ keys.opt_out | spoken_key }}.\n", "", 1)
    findings = [f for f in lint_script(parse_script(text), "Acme", TYPES) if f.severity == "error"]
    assert [(f.rule, box_of(f)) for f in findings] == [("opt-out", "prompt-consent")]
    assert describe(findings[0]).startswith("Consent prompt: must say how to stop the messages")
    assert box_of(Finding("error", "voice-locale", "voice", "x")) == "voice"
    assert box_of(Finding("error", "keys-distinct", "keys", "x")) == "keys"
    assert box_of(Finding("warning", "caller-language", "message_types", "x")) == "type-names"
    assert box_of(Finding("error", "renders", "all prompts", "x")) == "script"


def test_voices_offered_are_the_ones_that_speak_the_locale() -> None:
    voices = voice_choices("es-ES", "Polly.Lucia")
    assert "Polly.Lucia" in voices and "Polly.Joanna" not in voices
    assert voice_choices("es-ES", "Polly.Joanna")[0] == "Polly.Joanna"


def loaded_in_worker() -> tuple[bool, int]:
    """Run in the lint worker: is the checking code imported and its data read? (Importing this
    test module imports some of it, but not the lint worker's caller, and reads no data.)"""
    import sys

    from voice_scripts.voices import voice_catalog

    return "ivr.scripts_admin" in sys.modules, voice_catalog.cache_info().currsize


async def test_a_new_lint_worker_is_ready_before_its_first_check_so_its_deadline_counts_only_the_check() -> (
    None
):
    from ivr.lint_worker import WORKER, LintWorker

    assert WORKER.warm_up == ("ivr.scripts_admin:warm_up",)
    # What is loaded is the point here, not how fast: a deadline no busy machine misses.
    cold, warm = LintWorker(seconds=120), LintWorker(seconds=120, warm_up=WORKER.warm_up)
    try:
        assert await cold.run(loaded_in_worker) == (False, 0)
        assert await warm.run(loaded_in_worker) == (True, 1)
    finally:
        cold.close()
        warm.close()
