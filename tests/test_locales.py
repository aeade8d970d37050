"""Languages are data: one TOML file per language in voice_scripts/locales/, checked on load.

A file missing an entry is an error naming the file and the entry, a language without a file is
an error naming the file to add, never English instead; adding French is one file, shown here by
writing fr.toml into a temporary folder: a French script then lints, renders and runs through the
call flow with French system sentences.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from consent_store import Business, ExportFilter
from ivr.twilio.call_flow import (
    CallContext,
    GatherState,
    LoadedScript,
    confirmation,
    continue_call,
    prompt_fingerprint,
    rehearsal_confirmation,
    start_call,
    system_reply,
)
from tests.conftest import ACME, Service
from tests.test_manage_http import PASSWORD, csrf_of, sign_in
from tests.user_hashes import quick_hash
from voice_scripts import (
    DEFAULT_LOCALES,
    LanguageFileError,
    RenderContext,
    UnknownLanguage,
    default_script_text,
    language_for,
    lint_script,
    offered_languages,
    parse_script,
    render_prompt,
    spoken_key,
    spoken_list,
)
from voice_scripts.languages import DEFAULT_FOLDER, LanguageFiles, using_folder
from voice_scripts.notice import notice_words

ESPEAK = shutil.which("espeak-ng")
FRENCH = """\
language = "fr"

[speech]
and = "et"
keys = { "*" = "étoile", "#" = "dièse" }
words_per_second = 2.6

[lint]
opt_out_words = '(ne plus recevoir|vous désabonner|désinscrire)'
common_words = [
    "commande", "commandes", "de", "des", "du", "et", "jour", "jours", "la", "le", "les",
    "livraison", "messages", "mises", "mois", "offres", "par", "rappels", "semaine",
]

[recording_notice]
call = ["appel", "appels", "conversation"]
recorded = ["enregistré", "enregistrée", "enregistrement", "enregistrons"]
example = "Cet appel est enregistré comme preuve de votre choix."

[system]
voice = "Polly.Lea"
say_language = "fr-FR"
withheld = "Désolé, nous ne pouvons pas enregistrer de choix car votre numéro est masqué. Au revoir."
error = "Désolé : à cause d'un problème technique, nous ne pouvons pas prendre votre choix. Au revoir."
rehearsal = "Ceci était une répétition : rien n'a été enregistré."
unknown_number = "Désolé, ce numéro ne prend pas d'appels. Au revoir."

[preview]
espeak_voice = "fr-fr"

[regions."fr-CA".system]
voice = "Polly.Chantal"
say_language = "fr-CA"
"""

FRENCH_SCRIPT = """\
locale = "fr-FR"
voice = "Polly.Lea"
frequency = "au plus quatre messages par mois"

[keys]
opt_in = "1"
decline = "2"
opt_out = "9"
repeat = "*"

[prompts]
language_menu = "Cet appel est enregistré. Pour le français, appuyez sur {{ menu_key }}."
consent = '''
Bonjour, merci d'appeler {{ business }}.
Cet appel est enregistré comme preuve de votre choix.
Nous aimerions vous envoyer {{ message_types | spoken_list }} sur WhatsApp, {{ frequency }}.
Pour ne plus recevoir ces messages WhatsApp, rappelez et appuyez sur {{ keys.opt_out | spoken_key }}.
Pour accepter les messages WhatsApp de {{ business }}, appuyez sur {{ keys.opt_in | spoken_key }}.
Sinon, appuyez sur {{ keys.decline | spoken_key }}.
Pour réécouter ce message, appuyez sur {{ keys.repeat | spoken_key }}.
'''
subscribed = '''
Bonjour, merci d'appeler {{ business }}.
Cet appel est enregistré comme preuve de votre choix.
Vous recevez déjà {{ message_types | spoken_list }} sur WhatsApp, {{ frequency }}.
Pour ne plus recevoir ces messages WhatsApp, appuyez sur {{ keys.opt_out | spoken_key }}.
Pour réécouter ce message, appuyez sur {{ keys.repeat | spoken_key }}.
'''
confirmed = "Merci. Votre choix est enregistré : vous recevrez {{ message_types | spoken_list }}. Au revoir."
declined = "Entendu. Votre choix est enregistré : pas de messages de {{ business }}. Au revoir."
opted_out = "C'est fait. Votre choix est enregistré. Au revoir."
invalid = "Désolé, cette touche ne fait pas partie des choix."
no_input = "Désolé, nous n'avons entendu aucune touche."
goodbye = "Nous n'avons enregistré aucun choix. Au revoir."
error = "Désolé : à cause d'un problème technique, votre choix n'a pas été enregistré. Au revoir."
"""

TYPES = ("les avis de livraison", "les rappels de rendez-vous")
BUSINESS = Business("Boulangerie Paul", ("+33100000000",), TYPES, ("fr-FR",))


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """The package's language files, copied, in use: a test adds or breaks one there."""
    for path in DEFAULT_FOLDER.glob("*.toml"):
        shutil.copy(path, tmp_path)
    with using_folder(tmp_path):
        yield tmp_path


def test_the_languages_offered_are_the_files_present_and_each_default_script_has_one() -> None:
    assert offered_languages() == tuple(sorted(p.stem for p in DEFAULT_FOLDER.glob("*.toml")))
    assert set(offered_languages()) >= {"en", "es"}
    for locale in DEFAULT_LOCALES:
        language = language_for(locale)
        assert language.path == DEFAULT_FOLDER / f"{language.language}.toml"
        assert language.messaging is not None, "W1's [messaging] table is read and checked too"


def test_the_shipped_words_are_the_ones_callers_heard_before() -> None:
    assert (spoken_key("*", "en-US"), spoken_key("#", "es-ES"), spoken_key("7", "es-ES")) == (
        "star",
        "almohadilla",
        "7",
    )
    assert spoken_list(["a", "b", "c"], "es-MX") == "a, b y c"
    assert spoken_list(["a", "b"], "en-GB") == "a and b"
    assert (language_for("en-US").words_per_second, language_for("es-ES").words_per_second) == (2.5, 2.7)
    assert (language_for("en-US").system.voice, language_for("es-MX").system.say_language) == (
        "Polly.Joanna",
        "es-ES",
    )


@pytest.mark.parametrize("locale", ["de-DE", "fr-FR", "xx", "../en", "en/../../etc", ""])
def test_a_language_without_a_file_is_an_error_naming_the_file_never_english(locale: str) -> None:
    with pytest.raises(UnknownLanguage) as raised:
        spoken_key("*", locale)
    assert "voice_scripts/locales/" in str(raised.value) and "add" in str(raised.value)
    with pytest.raises(UnknownLanguage):
        spoken_list(["a", "b"], locale)
    with pytest.raises(UnknownLanguage):
        system_reply("withheld", locale)
    assert notice_words(locale) is None


def _entries() -> list[tuple[str, str]]:
    raw = tomllib.loads((DEFAULT_FOLDER / "en.toml").read_text("utf-8"))
    return [
        (table, entry)
        for table, entries in raw.items()
        if isinstance(entries, dict) and table != "regions"
        for entry in entries
    ]


@pytest.mark.parametrize(("table", "entry"), _entries())
def test_a_file_missing_any_entry_is_refused_naming_the_file_and_the_entry(
    folder: Path, table: str, entry: str
) -> None:
    path = folder / "en.toml"
    text = path.read_text("utf-8")
    pattern = re.compile(rf"^{re.escape(entry)} = (?:\[[^\]]*\]|.*)$", re.M)  # a list may span lines
    section = text.index(f"\n[{table}]\n")
    end = text.find("\n[", section + 1)
    end = len(text) if end == -1 else end
    body = pattern.sub("", text[section:end], count=1)
    assert body != text[section:end], (table, entry)
    path.write_text(text[:section] + body + text[end:], "utf-8")
    with pytest.raises(LanguageFileError) as raised:
        language_for("en-US")
    assert (raised.value.path, raised.value.key) == (path, f"{table}.{entry}")
    assert str(path) in str(raised.value) and f"'{table}.{entry}' is missing" in str(raised.value)


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        (('language = "en"', 'language = "es"'), "language", "must be 'en'"),
        (('and = "and"', 'and = ""'), "speech.and", "non-empty string"),
        (('and = "and"', "and = 1"), "speech.and", "non-empty string"),
        (("words_per_second = 2.5", "words_per_second = 0"), "speech.words_per_second", "between"),
        (("words_per_second = 2.5", "words_per_second = true"), "speech.words_per_second", "between"),
        (('"#" = "pound"', '"#" = "pound", "1" = "one"'), "speech.keys", "unknown entries 1"),
        (('"#" = "pound"', '"+" = "plus"'), 'speech.keys."#"', "is missing"),
        (("opt_out_words = '", "opt_out_words = '(unclosed"), "lint.opt_out_words", "not a valid regular"),
        (
            ('call = ["call", "calls", "conversation"]', "call = []"),
            "recording_notice.call",
            "non-empty list",
        ),
        (("[preview]", "[preveiw]"), "preveiw", "not a table"),
        (("[preview]", '[preview]\nvoice = "x"'), "preview.voice", "not an entry"),
        (
            ("[system]", '[regions."es-MX".system]\nvoice = "Polly.Mia"\n[system]'),
            'regions."es-MX"',
            "locale of 'en'",
        ),
        (
            ("[system]", '[regions."en-GB".system]\nvoise = "Polly.Amy"\n[system]'),
            'regions."en-GB".system.voise',
            "not an entry",
        ),
        (("[system]", '[regions."en-GB".system]\nvoice = ""\n[system]'), "system.voice", "non-empty string"),
        (("opt_out_keywords = [", "opt_out_keywords = [] #"), "messaging.opt_out_keywords", "non-empty list"),
        (("[speech]", "[speech"), "(file)", "cannot be read"),
    ],
)
def test_a_wrong_entry_is_refused_naming_the_file_the_entry_and_the_problem(
    folder: Path, change: tuple[str, str], key: str, problem: str
) -> None:
    path = folder / "en.toml"
    text = path.read_text("utf-8")
    assert change[0] in text
    path.write_text(text.replace(change[0], change[1], 1), "utf-8")
    with pytest.raises(LanguageFileError) as raised:
        language_for("en-US")
    assert raised.value.key == key and problem in str(raised.value) and str(path) in str(raised.value)
    assert language_for("es-ES").and_word == "y", "one broken file does not take the others down"


def test_each_file_is_read_once_not_per_use(folder: Path) -> None:
    first = language_for("en-US")
    (folder / "en.toml").unlink()
    assert language_for("en-US") is first
    assert spoken_key("*", "en-US") == "star"


def test_many_locale_names_share_one_language_each_and_memory_stays_bounded(tmp_path: Path) -> None:
    """Any 'en-...' name an editor's request carries reads en.toml's data; the names kept are bounded."""
    (tmp_path / "fr.toml").write_text(FRENCH, "utf-8")
    files = LanguageFiles(tmp_path)
    france, canada = files.for_locale("fr-FR"), files.for_locale("fr-CA")
    assert (france.variant, canada.variant) == ("fr", "fr-CA") and canada is not france
    names = [f"fr-X{n}" for n in range(5_000)] + ["fr-" + "a" * 10_000]
    assert all(files.for_locale(name) is france for name in names)
    assert len(files._locales) <= 1024 and set(files._variants) == {"fr", "fr-CA"}


def test_the_linter_reports_a_language_without_a_file_or_with_a_missing_entry(folder: Path) -> None:
    findings = lint_script(parse_script(FRENCH_SCRIPT), BUSINESS.name, TYPES)
    assert [(f.rule, f.prompt) for f in findings] == [("locale-data", "locale")]
    assert "fr.toml" in findings[0].message and "docs/managers.md" in findings[0].message
    path = folder / "es.toml"
    path.write_text(path.read_text("utf-8").replace('and = "y"', ""), "utf-8")
    findings = lint_script(parse_script(default_script_text("es-ES")), BUSINESS.name, TYPES)
    assert [(f.rule, f.severity) for f in findings] == [("locale-data", "error")]
    assert "es.toml: 'speech.and' is missing" in findings[0].message


def test_a_language_file_brings_its_common_words_to_the_caller_language_rule(folder: Path) -> None:
    (folder / "fr.toml").write_text(FRENCH, "utf-8")
    english = FRENCH_SCRIPT.replace("au plus quatre messages par mois", "at most four messages a month")
    assert english != FRENCH_SCRIPT
    findings = lint_script(parse_script(english), BUSINESS.name, TYPES)
    found = [f for f in findings if f.rule == "caller-language"]
    assert [(f.severity, f.prompt) for f in found] == [("warning", "frequency")]
    assert "in 'en' words" in found[0].message
    # The French words are fr.toml's: without them the list is refused, not silently empty.
    (folder / "fr.toml").write_text(FRENCH.replace("common_words = [", "common_words_x = ["), "utf-8")
    with pytest.raises(LanguageFileError) as raised:
        LanguageFiles(folder).for_locale("fr-FR")  # a fresh reader: the one in use keeps what it read
    assert raised.value.key == "lint.common_words_x"


def test_adding_french_is_one_file(folder: Path) -> None:
    (folder / "fr.toml").write_text(FRENCH, "utf-8")
    assert "fr" in offered_languages()
    script = parse_script(FRENCH_SCRIPT)
    assert lint_script(script, BUSINESS.name, TYPES) == []

    context = RenderContext(BUSINESS.name, TYPES)
    consent = render_prompt(script, "consent", context)
    assert "les avis de livraison et les rappels de rendez-vous" in consent
    assert "appuyez sur étoile" in consent and "star" not in consent

    ctx = CallContext(BUSINESS, {"fr-FR": LoadedScript(script, 3)}, False, "https://ivr.example.com")
    first = ET.fromstring(start_call(ctx, "https://ivr.example.com/twilio/recording", 1_764_000_000_000))
    said = [(s.text or "", s.get("voice"), s.get("language")) for s in first.iter("Say")]
    assert said[0][1:] == ("Polly.Lea", "fr-FR") and "Cet appel est enregistré" in said[0][0]
    assert "appuyez sur 1" in said[-1][0]
    state = GatherState("consent", 1, 0, "fr-FR", 3, prompt_fingerprint(ctx.render("fr-FR", "consent")), 1, 1)
    reply = continue_call(ctx, state, "1")
    assert reply.decide is not None and reply.decide.action == "opt_in" and reply.decide.locale == "fr-FR"
    assert "Merci. Votre choix est enregistré" in confirmation(ctx, "fr-FR", "opt_in")
    rehearsal = ET.fromstring(rehearsal_confirmation(ctx, "fr-FR", "opt_in"))
    assert next(rehearsal.iter("Say")).text == "Ceci était une répétition : rien n'a été enregistré."

    withheld = next(ET.fromstring(system_reply("withheld", "fr-FR")).iter("Say"))
    assert (withheld.get("voice"), withheld.get("language")) == ("Polly.Lea", "fr-FR")
    assert withheld.text and withheld.text.startswith("Désolé, nous ne pouvons pas enregistrer")
    # A region's entries replace the language's for that locale only.
    canadian = next(ET.fromstring(system_reply("error", "fr-CA")).iter("Say"))
    assert (canadian.get("voice"), canadian.get("language")) == ("Polly.Chantal", "fr-CA")
    assert canadian.text == language_for("fr-FR").system.error


def test_a_folder_is_read_on_its_own(tmp_path: Path) -> None:
    (tmp_path / "fr.toml").write_text(FRENCH, "utf-8")
    files = LanguageFiles(tmp_path)
    assert files.languages() == ("fr",)
    assert files.for_locale("fr-CA").system.voice == "Polly.Chantal"
    with pytest.raises(UnknownLanguage):
        files.for_locale("en-US")
    assert LanguageFiles(tmp_path / "absent").languages() == ()


@pytest.fixture
async def editor(service: Service) -> tuple[httpx.AsyncClient, dict[str, str]]:
    """A signed-in manager's client and the CSRF header the editor sends."""
    await service.store.add_user("mia", "manager", quick_hash(PASSWORD), author="test")
    await sign_in(service.client, "mia")
    page = await service.client.get("/manage/script", params={"business": ACME, "locale": "en-US"})
    return service.client, {"X-CSRF-Token": csrf_of(page)}


@pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed (CI installs it)")
async def test_the_speech_preview_speaks_with_the_language_files_voice_and_refuses_a_language_without_one(
    editor: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    client, headers = editor
    spanish = await client.post(
        "/manage/api/speech", json={"text": "Hola", "locale": "es-MX"}, headers=headers
    )
    assert spanish.status_code == 200
    assert spanish.content == espeak_says("Hola", language_for("es-MX").espeak_voice)
    german = await client.post(
        "/manage/api/speech", json={"text": "Hallo", "locale": "de-DE"}, headers=headers
    )
    assert german.status_code == 400 and "No language file for 'de'" in german.json()["error"]


def espeak_says(text: str, voice: str) -> bytes:
    assert ESPEAK is not None
    return subprocess.run(
        [ESPEAK, "-v", voice, "--stdout", "--stdin"], input=text.encode(), capture_output=True, check=True
    ).stdout


async def test_a_french_business_takes_calls_through_the_webhooks(folder: Path, service: Service) -> None:
    """With fr.toml added, a business with a French script takes real webhook calls in French:
    the consent prompt, the decision recorded as fr-FR, and the service's own sentences."""
    (folder / "fr.toml").write_text(FRENCH, "utf-8")
    business = Business("Boulangerie Paul", ("+33100000001",), TYPES, ("fr-FR",))
    await service.store.add_business(business, {"fr-FR": FRENCH_SCRIPT}, author="test")
    # The app's catalog may have loaded before the business was added (its watcher checks the
    # store once a second; a busy machine takes longer than that to get here): check the store now.
    assert service.app is not None
    await service.app.state.runtime.catalog.refresh()
    call = await service.twilio.call("+33100000001", "+33612345678", ["1"])
    assert call.spoken[0].language == "fr-FR" and "Cet appel est enregistré" in call.spoken[0].text
    assert "les avis de livraison et les rappels de rendez-vous" in call.transcript
    assert "Merci. Votre choix est enregistré" in call.spoken[-1].text
    [row] = [r async for r in service.store.export_decisions(ExportFilter(business="Boulangerie Paul"))]
    assert (row.locale, row.action, row.digits) == ("fr-FR", "opt_in", "1")
    hidden = await service.twilio.call("+33100000001", "anonymous", [])
    assert [(s.text, s.voice) for s in hidden.spoken] == [
        (language_for("fr-FR").system.withheld, "Polly.Lea")
    ]
