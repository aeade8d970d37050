"""Languages are data: one TOML file per language in voice_scripts/locales/, checked on load.

A file missing an entry is an error naming the file and the entry, a language without a file is
an error naming the file to add, never English instead; adding French is one file, shown here by
writing fr.toml into a temporary folder: a French business can then be created with its default
script (from the CLI or the businesses page), which lints, renders and runs through the call flow
with French system sentences.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
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
from tests.cli_runner import run_ivr
from tests.conftest import ACME, Service
from tests.test_manage_http import PASSWORD, csrf_of, sign_in
from tests.user_hashes import quick_hash
from voice_scripts import (
    LanguageFileError,
    RenderContext,
    UnknownLanguage,
    UnsupportedLocale,
    default_script_text,
    language_for,
    lint_script,
    offered_languages,
    offered_locales,
    parse_script,
    render_prompt,
    spoken_key,
    spoken_list,
)
from voice_scripts.languages import DEFAULT_FOLDER, LanguageFiles, using_folder
from voice_scripts.notice import notice_words

ESPEAK = shutil.which("espeak-ng")
FRENCH_LANGUAGE = """\
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

FRENCH_SCRIPT = '''\
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
consent = """
Bonjour, merci d'appeler {{ business }}.
Cet appel est enregistré comme preuve de votre choix.
Nous aimerions vous envoyer {{ message_types | spoken_list }} sur WhatsApp, {{ frequency }}.
Pour ne plus recevoir ces messages WhatsApp, rappelez et appuyez sur {{ keys.opt_out | spoken_key }}.
Pour accepter les messages WhatsApp de {{ business }}, appuyez sur {{ keys.opt_in | spoken_key }}.
Sinon, appuyez sur {{ keys.decline | spoken_key }}.
Pour réécouter ce message, appuyez sur {{ keys.repeat | spoken_key }}.
"""
subscribed = """
Bonjour, merci d'appeler {{ business }}.
Cet appel est enregistré comme preuve de votre choix.
Vous recevez déjà {{ message_types | spoken_list }} sur WhatsApp, {{ frequency }}.
Pour ne plus recevoir ces messages WhatsApp, appuyez sur {{ keys.opt_out | spoken_key }}.
Pour réécouter ce message, appuyez sur {{ keys.repeat | spoken_key }}.
"""
confirmed = "Merci. Votre choix est enregistré : vous recevrez {{ message_types | spoken_list }}. Au revoir."
declined = "Entendu. Votre choix est enregistré : pas de messages de {{ business }}. Au revoir."
opted_out = "C'est fait. Votre choix est enregistré. Au revoir."
invalid = "Désolé, cette touche ne fait pas partie des choix."
no_input = "Désolé, nous n'avons entendu aucune touche."
goodbye = "Nous n'avons enregistré aucun choix. Au revoir."
error = "Désolé : à cause d'un problème technique, votre choix n'a pas été enregistré. Au revoir."
'''
# The whole language file: its words and rules, and its default script (the first script of a new
# French business), between ''' and ''' as a TOML literal string keeps it byte for byte.
FRENCH = FRENCH_LANGUAGE + f"\n[default_script]\ntext = '''\n{FRENCH_SCRIPT}'''\n"

TYPES = ("les avis de livraison", "les rappels de rendez-vous")
BUSINESS = Business("Boulangerie Paul", ("+33100000000",), TYPES, ("fr-FR",))


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """The package's language files, copied, in use: a test adds or breaks one there."""
    for path in DEFAULT_FOLDER.glob("*.toml"):
        shutil.copy(path, tmp_path)
    with using_folder(tmp_path):
        yield tmp_path


def test_the_languages_offered_are_the_files_present_and_each_brings_its_default_script() -> None:
    assert offered_languages() == tuple(sorted(p.stem for p in DEFAULT_FOLDER.glob("*.toml")))
    assert set(offered_languages()) >= {"en", "es"}
    assert offered_locales() == ("en-US", "es-ES")
    for locale in offered_locales():
        language = language_for(locale)
        assert language.path == DEFAULT_FOLDER / f"{language.language}.toml"
        assert language.messaging is not None, "W1's [messaging] table is read and checked too"
        assert language.default_script.locale == locale
        assert parse_script(default_script_text(locale)).locale == locale


# SHA-256 and size in bytes of voice_scripts/defaults/en-US.toml and es-ES.toml as shipped before the
# default scripts moved into the language files (a5a5c31): a new business's first script, what its
# editor shows and what its callers hear, is the same text byte for byte.
SHIPPED_DEFAULT_SCRIPTS = {
    "en-US": ("497a5f66b9f015682ec9f86700af4a9a368d2c4836453e20c0a5f61cd074249b", 2459),
    "es-ES": ("2cb5d0dced0d949f25447294cfb32e8d0339e727135417fdbf224de5aea6d71b", 2570),
}


@pytest.mark.parametrize("locale", sorted(SHIPPED_DEFAULT_SCRIPTS))
def test_the_shipped_default_scripts_are_the_same_text_byte_for_byte(locale: str) -> None:
    text = default_script_text(locale).encode("utf-8")
    assert (hashlib.sha256(text).hexdigest(), len(text)) == SHIPPED_DEFAULT_SCRIPTS[locale]


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
    # A list or a '''-quoted text may span lines; the default script's text holds "[keys]" lines, so
    # the entry is the first of its name after its table's heading, not the table cut at a "[".
    pattern = re.compile(rf"^{re.escape(entry)} = (?:\[[^\]]*\]|'''[\s\S]*?'''|.*)$", re.M)
    section = text.index(f"\n[{table}]\n")
    body = pattern.sub("", text[section:], count=1)
    assert body != text[section:], (table, entry)
    path.write_text(text[:section] + body, "utf-8")
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
    # The shipped Spanish script, read from the package's files: the copy in use is read once, broken.
    spanish = parse_script(LanguageFiles(DEFAULT_FOLDER).for_locale("es-ES").default_script.text)
    path = folder / "es.toml"
    path.write_text(path.read_text("utf-8").replace('and = "y"', ""), "utf-8")
    findings = lint_script(spanish, BUSINESS.name, TYPES)
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


def test_adding_french_is_one_file_and_a_french_business_is_created_with_its_default_script(
    folder: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """`ivr business add --locale fr-FR`, in-process: refused before fr.toml, created after it, with
    the default script of fr.toml, which lints and renders in French."""
    env = {"IVR_DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('db') / 'ivr.db'}"}
    add = ["business", "add", "--name", BUSINESS.name, "--number", "+33100000002", "--locale", "fr-FR"]
    add += [arg for t in TYPES for arg in ("--message-type", t)]
    refused = run_ivr(*add, env=env)
    assert refused.returncode == 2 and refused.stdout == ""
    assert "'fr-FR' is not one of en-US, es-ES" in refused.stderr, refused.stderr

    (folder / "fr.toml").write_text(FRENCH, "utf-8")
    assert offered_locales() == ("en-US", "es-ES", "fr-FR")
    assert default_script_text("fr-FR") == FRENCH_SCRIPT
    created = run_ivr(*add, env=env)
    assert created.returncode == 0, created.stderr
    assert "locales fr-FR (default scripts published as version 1)" in created.stdout
    shown = run_ivr("script", "show", "--business", BUSINESS.name, "--locale", "fr-FR", env=env)
    assert shown.returncode == 0 and shown.stdout == FRENCH_SCRIPT
    script = parse_script(shown.stdout)
    assert lint_script(script, BUSINESS.name, TYPES) == []
    consent = render_prompt(script, "consent", RenderContext(BUSINESS.name, TYPES))
    assert "Nous aimerions vous envoyer les avis de livraison et les rappels de rendez-vous" in consent
    assert "appuyez sur étoile" in consent
    # A locale of French without a default script of its own is not offered, never fr-FR's instead.
    with pytest.raises(UnsupportedLocale, match="'fr-CA'; available: en-US, es-ES, fr-FR"):
        default_script_text("fr-CA")


def test_a_region_with_a_default_script_of_its_own_is_offered_for_new_businesses(tmp_path: Path) -> None:
    canadian = FRENCH_SCRIPT.replace('"fr-FR"', '"fr-CA"', 1).replace("Polly.Lea", "Polly.Chantal", 1)
    region = f"\n[regions.\"fr-CA\".default_script]\ntext = '''\n{canadian}'''\n"
    (tmp_path / "fr.toml").write_text(FRENCH + region, "utf-8")
    with using_folder(tmp_path):
        assert offered_locales() == ("fr-FR", "fr-CA")
        assert (default_script_text("fr-FR"), default_script_text("fr-CA")) == (FRENCH_SCRIPT, canadian)
        assert lint_script(parse_script(canadian), BUSINESS.name, TYPES) == []


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        ((f"\n[default_script]\ntext = '''\n{FRENCH_SCRIPT}'''\n", ""), "default_script", "is missing"),
        (("text = '''", "texte = '''"), "default_script.texte", "not an entry"),
        ((f"text = '''\n{FRENCH_SCRIPT}'''", 'text = " "'), "default_script.text", "TOML text"),
        (('no_input = "Désolé', 'no_inputs = "Désolé'), "default_script.text", "missing no_input"),
        (('locale = "fr-FR"', 'locale = "de-DE"'), "default_script.text", "'de-DE', not a locale of 'fr'"),
        (
            ('voice = "Polly.Lea"\nfrequency', 'voice = "Polly.Joanna"\nfrequency'),
            "default_script.text",
            "not speak fr-FR",
        ),
        (
            ("[regions.", f"[regions.\"fr-CA\".default_script]\ntext = '''\n{FRENCH_SCRIPT}'''\n\n[regions."),
            'regions."fr-CA".default_script.text',
            "must be a script for fr-CA",
        ),
    ],
    ids=["no-table", "misnamed", "empty", "unusable", "other-language", "voice", "region-for-another"],
)
def test_a_language_file_without_a_usable_default_script_is_refused_naming_the_entry(
    folder: Path, change: tuple[str, str], key: str, problem: str
) -> None:
    """Like any missing entry: no French business from it, and never another language's script."""
    assert change[0] in FRENCH
    (folder / "fr.toml").write_text(FRENCH.replace(change[0], change[1], 1), "utf-8")
    with pytest.raises(LanguageFileError) as raised:
        offered_locales()
    assert raised.value.key == key and problem in str(raised.value), str(raised.value)
    assert str(folder / "fr.toml") in str(raised.value)
    with pytest.raises(LanguageFileError):
        default_script_text("fr-FR")


async def test_a_french_file_without_its_default_script_is_named_by_the_businesses_page_and_the_cli(
    folder: Path, service: Service, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No French business, and no silent list without French: the page and the CLI name the entry."""
    (folder / "fr.toml").write_text(FRENCH_LANGUAGE, "utf-8")
    missing = f"{folder / 'fr.toml'}: 'default_script' is missing (a table)"
    await service.store.add_user("root", "admin", quick_hash(PASSWORD), author="test")
    assert (await sign_in(service.client, "root")).status_code == 303
    page = await service.client.get("/manage/businesses")
    assert page.status_code == 500 and missing in html.unescape(page.text)
    assert 'name="locale"' not in page.text
    database = tmp_path_factory.mktemp("db") / "ivr.db"
    add = ["business", "add", "--name", "B", "--number", "+33100000003", "--message-type", "x"]
    env = {"IVR_DATABASE_URL": f"sqlite:///{database}"}
    refused = await asyncio.to_thread(run_ivr, *add, "--locale", "fr-FR", env=env)
    assert refused.returncode == 2 and refused.stdout == "" and len(refused.stderr.splitlines()) == 1
    assert missing in refused.stderr
    assert not database.exists(), "refused before the store is opened"


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


async def test_a_french_business_created_on_the_businesses_page_takes_calls_through_the_webhooks(
    folder: Path, service: Service
) -> None:
    """With fr.toml added, fr-FR is offered on the businesses page and on a business's page; a
    business an admin creates there with it gets fr.toml's default script, and takes real webhook
    calls in French: the consent prompt, the decision recorded as fr-FR, the service's own sentences."""
    (folder / "fr.toml").write_text(FRENCH, "utf-8")
    await service.store.add_user("root", "admin", quick_hash(PASSWORD), author="test")
    assert (await sign_in(service.client, "root")).status_code == 303
    page = await service.client.get("/manage/businesses")
    assert 'name="locale" value="fr-FR"' in page.text
    acme = await service.client.get("/manage/business", params={"name": ACME})
    assert '<option value="fr-FR">fr-FR</option>' in acme.text
    form = {"name": "Boulangerie Paul", "numbers": "+33100000001", "message_types": "\n".join(TYPES)}
    created = await service.client.post(
        "/manage/businesses", data={"csrf_token": csrf_of(page), **form, "locale": ["fr-FR"]}
    )
    assert created.status_code == 303, created.text
    assert (await service.store.get_business("Boulangerie Paul")).locales == ("fr-FR",)
    assert (await service.store.script_version("Boulangerie Paul", "fr-FR")).text == FRENCH_SCRIPT
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
