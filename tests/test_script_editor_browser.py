"""A manager who is not a programmer changes what callers hear with the form, in Chromium: plain text
with placeholders, the preview and the policy check as they type, a publish refused naming the box,
the changes confirmed, and a call that hears the new words. Screenshots go to docs/images/.

One real `ivr serve` runs for the module (`editor_site`), and each test edits a business of its own
on it, so the tests stay independent in any order: the demo business for the screenshots the docs
show, and for the others a copy of the demo (its message types, locales and Spanish names) under
another name and number. A server per test cost a process start and a lint worker's each."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.sync_api import expect

from consent_store import open_store
from ivr.businesses import (
    DEMO_MESSAGE_TYPES,
    DEMO_NAME,
    DEMO_SPOKEN_NAMES,
    add_business,
    ensure_demo_business,
)
from tests.cli_runner import run_ivr
from tests.live_server import SITE_PASSWORD, add_users, server, wait_until_healthy

pytestmark = pytest.mark.slow

DEMO = "+15550100100"
IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
OPENING = "Good news on WhatsApp: we can send you"
OPT_OUT = "You can stop these WhatsApp messages at any time: call this number again and press [opt-out key]."


@dataclass(frozen=True)
class Bakery:
    """A business one test edits: its name and its number."""

    name: str
    number: str


THE_DEMO = Bakery(DEMO_NAME, DEMO)
# The demo's copies, one per test that does not take the docs' screenshots (555-0100 to 555-0199 are
# fictional numbers, as the demo's).
DRAFTING = Bakery("Draft Bakery", "+15550100101")
CHECKED_AT = {1100: Bakery("Wide Bakery", "+15550100102"), 390: Bakery("Narrow Bakery", "+15550100103")}
KEYBOARD = Bakery("Keyboard Bakery", "+15550100104")


def ivr(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`ivr ARGS` in this process (tests/cli_runner.py) on the site's database; `ivr serve` is the
    real process here."""
    return run_ivr(*args, env=env, drop=("IVR_", "TWILIO_"))


async def _create_bakeries(database_url: str) -> None:
    """The demo business as `ivr serve` makes it on its first run, then the copies; `ivr serve`
    then starts on a store that has businesses and loads them all at start-up."""
    async with open_store(database_url) as store:
        assert await ensure_demo_business(store) is not None
        for bakery in (DRAFTING, *CHECKED_AT.values(), KEYBOARD):
            await add_business(
                store,
                bakery.name,
                [bakery.number],
                DEMO_MESSAGE_TYPES,
                ("en-US", "es-ES"),
                demo=True,
                spoken_names=DEMO_SPOKEN_NAMES,
            )


@pytest.fixture(scope="module")
def editor_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A real `ivr serve` on a fresh SQLite file holding the demo and its copies, with one manager,
    alice (SITE_PASSWORD): its base URL and the environment that reaches it."""
    tmp = tmp_path_factory.mktemp("editor")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "TWILIO_"))}
    env["IVR_DATABASE_URL"] = f"sqlite:///{tmp / 'ivr.db'}"
    with ThreadPoolExecutor(1) as thread:  # the browser's event loop may run in this one
        thread.submit(asyncio.run, _create_bakeries(env["IVR_DATABASE_URL"])).result()
    log = tmp / "serve.log"
    with server(env, log) as (process, base):
        wait_until_healthy(base, process, log)
        add_users(env["IVR_DATABASE_URL"], {"alice": "manager"})  # as `ivr user add`, in this process
        yield base, env


def script_url(base: str, bakery: Bakery, locale: str, path: str = "/manage/script", **more: str) -> str:
    return f"{base}{path}?{urlencode({'business': bakery.name, 'locale': locale, **more})}"


def _sign_in(page: Any, base: str) -> None:
    page.set_default_timeout(90_000)  # the machine running the suite may be busy; nothing here is timed
    page.goto(f"{base}/login")
    page.fill("#name", "alice")
    page.fill("#password", SITE_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/manage")


def _put_caret_after(page: Any, selector: str, words: str) -> None:
    page.eval_on_selector(
        selector,
        "(el, words) => { const at = el.value.indexOf(words) + words.length; el.focus();"
        " el.setSelectionRange(at, at); }",
        words,
    )


def test_manager_edits_the_consent_prompt_in_the_form_and_callers_hear_it(
    browser: Any, editor_site: tuple[str, dict[str, str]]
) -> None:
    """On the demo business: the docs' screenshots show it."""
    base, env = editor_site
    IMAGES.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1100, "height": 1500})
    _sign_in(page, base)
    page.get_by_role("region", name=DEMO_NAME).get_by_role("link", name="en-US").click()
    consent = page.get_by_label("Consent prompt", exact=True)
    consent.wait_for()
    assert page.locator("#text").is_hidden()  # the TOML is behind the Advanced switch
    original = consent.input_value()
    assert "[message types]" in original and "{{" not in original

    # Plain text in place of "We would like to send you [message types] on WhatsApp, [frequency]."
    edited = original.replace("We would like to send you [message types] on WhatsApp, [frequency].", OPENING)
    assert edited != original
    consent.fill(edited)
    page.locator("#notes-prompt-consent li.error", has_text="message type").first.wait_for()
    # ... then the message types and the frequency inserted as placeholders at the caret.
    inserts = page.get_by_role("group", name="Insert into Consent prompt")
    _put_caret_after(page, "#prompt-consent", OPENING)
    inserts.get_by_role("button", name="+ message types").click()
    page.keyboard.type(",")
    inserts.get_by_role("button", name="+ frequency").click()
    page.keyboard.type(".")
    assert f"{OPENING} [message types], [frequency]." in consent.input_value()
    heard = f"{OPENING} order updates and delivery reminders, no more than four messages a month."
    page.locator("#said-consent", has_text=heard).wait_for()
    page.locator("#lint li.ok").wait_for()
    assert heard in page.inner_text("#preview")
    page.locator("#box-prompt-consent").evaluate("el => el.scrollIntoView({block: 'start'})")
    page.screenshot(path=str(IMAGES / "script-form.png"))

    # Without the opt-out sentence the policy check names the box, and Publish refuses, naming it.
    without = consent.input_value().replace(OPT_OUT, "")
    consent.fill(without)
    page.locator("#notes-prompt-consent li.error", has_text="how to stop the messages").wait_for()
    assert page.get_attribute("#prompt-consent", "aria-invalid") == "true"
    assert page.get_attribute("#publish", "aria-disabled") == "true"
    page.focus("#publish")  # still reachable with the keyboard: it says why it does not publish
    page.keyboard.press("Enter")
    status = page.locator("#publish-status", has_text="Not published: Consent prompt: must say how to stop")
    status.wait_for()
    assert page.evaluate("document.activeElement.id") == "prompt-consent"
    page.locator("#box-prompt-consent").screenshot(path=str(IMAGES / "script-form-refused.png"))

    # Put it back: the check passes again.
    consent.fill(without.replace("[frequency].", f"[frequency].\n{OPT_OUT}", 1))
    page.locator("#publish-status", has_text="Ready to publish").wait_for()

    # Keys cannot clash: choosing the opt-in key for opting out is refused in words.
    page.select_option("#key-opt_out", "1")
    page.locator("#notes-key-opt_out li", has_text="1 is already the opt-in key").wait_for()
    page.select_option("#key-opt_out", "9")
    page.locator("#publish-status", has_text="Ready to publish").wait_for()

    # The TOML view shows the same draft, and a change there shows in the form.
    page.get_by_label("Advanced: edit as TOML").check()
    toml = page.locator("#text")
    toml.wait_for()
    assert "Good news on WhatsApp: we can send you {{ message_types | spoken_list }}, {{ frequency }}." in (
        toml.input_value()
    )
    toml.fill(toml.input_value().replace('voice = "Polly.Joanna"', 'voice = "Polly.Matthew"'))
    page.locator("#said-consent", has_text=heard).wait_for(state="attached")
    expect(page.locator("#voice")).to_have_value("Polly.Matthew", timeout=90_000)
    toml.fill(toml.input_value().replace("[keys]", "[keys", 1))
    page.locator("#toml-notes li.error button.goto").first.wait_for()
    assert "invalid TOML" in page.inner_text("#toml-notes") and "Line " in page.inner_text("#toml-notes")
    assert page.inner_text("#gutter .bad").strip() == "\u25b6 8"  # marked beside its line
    page.locator("#toml-notes button.goto").first.click()  # the cursor goes to the line
    selected = page.evaluate(
        "() => { const t = document.getElementById('text');"
        " return t.value.slice(t.selectionStart, t.selectionEnd); }"
    )
    assert selected == "[keys"
    page.screenshot(path=str(IMAGES / "script-toml-error.png"))
    toml.fill(toml.input_value().replace("[keys\n", "[keys]\n", 1))
    page.locator("#publish-status", has_text="Ready to publish").wait_for()
    page.get_by_label("Advanced: edit as TOML").uncheck()
    assert page.input_value("#voice") == "Polly.Matthew"

    # Publishing shows what callers will hear differently, and asks.
    page.get_by_role("button", name="Publish", exact=True).click()
    dialog = page.get_by_role("dialog", name="Publish these changes?")
    dialog.wait_for()
    assert "Good news" in dialog.locator("ins").first.inner_text()
    dialog.screenshot(path=str(IMAGES / "script-publish-confirm.png"))
    dialog.get_by_role("button", name="Publish now").click()
    page.locator("#message", has_text="Published version 2").wait_for()

    # Publishing the same text again changes nothing, and says so.
    page.get_by_role("button", name="Publish", exact=True).click()
    page.get_by_role("dialog").get_by_text("Nothing to publish").wait_for()
    page.get_by_role("button", name="Keep editing").click()

    # A call hears the new words (key 1: English, then 1: opt in).
    call = ivr(env, "call", "--to", DEMO, "--from", "+15550100003", "--keys", "11")
    assert call.returncode == 0, call.stderr
    assert heard in " ".join(call.stdout.split())
    assert (
        "Polly.Matthew" in ivr(env, "script", "show", "--business", "Demo Bakery", "--locale", "en-US").stdout
    )

    # Then and now, side by side.
    page.get_by_role("link", name="Compare version 1 with 2").click()
    page.locator("ins", has_text="Good news").first.wait_for()
    assert "We would like to send you" in page.locator("del").first.inner_text() + page.inner_text("main")
    page.screenshot(path=str(IMAGES / "script-compare.png"), full_page=True)
    page.close()


def test_a_draft_is_saved_as_the_manager_types_and_rehearsal_plays_it(
    browser: Any, editor_site: tuple[str, dict[str, str]]
) -> None:
    base, env = editor_site
    page = browser.new_page(viewport={"width": 1100, "height": 1400})
    _sign_in(page, base)
    page.goto(script_url(base, DRAFTING, "es-ES"))
    page.get_by_label("Consent prompt", exact=True).wait_for()
    # The demo's Spanish prompt names its message types in Spanish; a manager renames one.
    names = page.get_by_label("“order updates” is said as")
    assert names.input_value() == "avisos de pedidos"
    page.locator("#said-consent", has_text="avisos de pedidos y recordatorios de entrega").wait_for()
    names.fill("novedades de sus pedidos")
    page.locator("#said-consent", has_text="novedades de sus pedidos y recordatorios de entrega").wait_for()
    page.locator("#autosave", has_text="Draft saved").wait_for()
    page.reload()
    assert "unpublished draft" in page.inner_text(".lead")
    assert page.input_value("#type-1") == "novedades de sus pedidos"
    page.get_by_role("button", name="Rehearse this draft").click()
    page.wait_for_url(f"{base}/try?*")
    assert page.is_checked("#draft")
    assert page.input_value("#to") == DRAFTING.number
    page.close()
    shown = ivr(env, "script", "show", "--business", DRAFTING.name, "--locale", "es-ES").stdout
    assert "novedades" not in shown  # a draft: callers still hear the published version


BLOCKING = ("serious", "critical")


def _axe(page: Any, source: str) -> list[str]:
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(source)
    results = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['impact']} {v['id']}: " + "; ".join(", ".join(n["target"]) for n in v["nodes"][:4])
        for v in results["violations"]
        if v["impact"] in BLOCKING
    ]


def _wide(page: Any) -> int:
    width: int = page.evaluate("() => document.documentElement.scrollWidth")
    return width


@pytest.mark.parametrize("width", [1100, 390])
def test_every_state_of_the_editor_passes_axe_core_and_fits_a_phone(
    browser: Any, editor_site: tuple[str, dict[str, str]], width: int
) -> None:
    """The form, its problems beside the boxes, the TOML view with problems by line, the publish
    confirmation and the comparison: no serious or critical axe-core violation, and at 390 px
    nothing scrolls sideways. (At 390 px the docs' screenshot is of the demo's form, untouched.)"""
    from tests.page_walk import axe_source

    base, _ = editor_site
    bakery = CHECKED_AT[width]
    source = axe_source()
    page = browser.new_page(viewport={"width": width, "height": 900})
    _sign_in(page, base)
    page.context.add_init_script(source)  # every page from here loads axe-core: 650 kB sent once
    found: dict[str, list[str]] = {}

    def check(state: str) -> None:
        found[state] = _axe(page, source)
        if width == 390 and _wide(page) > 390:
            found[state].append(f"scrolls sideways: {_wide(page)} px wide")

    if width == 390:
        page.goto(script_url(base, THE_DEMO, "es-ES"))
        page.locator("#box-prompt-consent").evaluate("el => el.scrollIntoView({block: 'start'})")
        page.screenshot(path=str(IMAGES / "script-form-phone.png"))
    page.goto(script_url(base, bakery, "es-ES"))
    consent = page.get_by_label("Consent prompt", exact=True)
    check("form")
    consent.fill(consent.input_value().replace("[opt-out key]", "[opt out llave]"))
    page.locator("#notes-prompt-consent li.error").first.wait_for()
    page.select_option("#key-repeat", "1")
    page.locator("#notes-key-repeat li").wait_for()
    check("form with problems")
    page.get_by_label("Advanced: edit as TOML").check()
    page.locator("#toml-notes button.goto").first.wait_for()
    check("toml with problems")
    page.goto(script_url(base, bakery, "en-US"))
    consent = page.get_by_label("Consent prompt", exact=True)
    consent.fill(consent.input_value().replace("Hello,", "Good morning,"))
    page.locator("#said-consent", has_text="Good morning").wait_for()
    page.get_by_role("button", name="Publish", exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Publish now").wait_for()
    check("publish confirmation")
    page.get_by_role("dialog").get_by_role("button", name="Publish now").click()
    page.locator("#message", has_text="Published version 2").wait_for()
    check("after publishing")
    page.goto(script_url(base, bakery, "en-US", "/manage/script/compare", a="1", b="2"))
    check("compare")
    page.close()
    problems = [f"{state}: {p}" for state, ps in found.items() for p in ps]
    assert not problems, "\n".join(problems)


def test_the_editor_works_with_the_keyboard_alone(
    browser: Any, editor_site: tuple[str, dict[str, str]]
) -> None:
    base, env = editor_site
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    _sign_in(page, base)
    page.goto(script_url(base, KEYBOARD, "en-US"))
    page.focus("#prompt-goodbye")
    page.keyboard.press("Control+End")
    page.keyboard.type(" Thank you for calling")
    page.keyboard.press("Tab")  # to the first Insert button under the box
    assert page.evaluate("() => document.activeElement.textContent") == "+ business name"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "prompt-goodbye"
    page.keyboard.type(".")
    assert page.input_value("#prompt-goodbye").endswith("Goodbye. Thank you for calling [business name].")
    page.locator("#said-goodbye", has_text=f"Thank you for calling {KEYBOARD.name}.").wait_for()
    page.focus("#advanced")
    page.keyboard.press("Space")
    assert page.locator("#text").is_visible() and "{{ business }}." in page.input_value("#text")
    page.keyboard.press("Space")
    assert page.locator("#prompt-goodbye").is_visible()
    page.focus("#publish")
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Publish these changes?")
    dialog.wait_for()
    assert page.evaluate("() => document.activeElement.id") == "confirm-publish"
    page.keyboard.press("Escape")  # changes nothing
    dialog.wait_for(state="hidden")
    page.focus("#publish")
    page.keyboard.press("Enter")
    dialog.wait_for()
    page.keyboard.press("Enter")
    page.locator("#message", has_text="Published version 2").wait_for()
    shown = ivr(env, "script", "show", "--business", KEYBOARD.name, "--locale", "en-US").stdout
    assert "Thank you for calling {{ business }}." in shown
    # Leaving with a change not yet saved asks first; once the draft is saved (a moment after
    # typing stops), it does not. (The page's beforeunload handler, as the browser calls it.)
    leaving = (
        "() => { const e = new Event('beforeunload', {cancelable: true}); window.dispatchEvent(e);"
        " return e.defaultPrevented; }"
    )
    assert page.evaluate(leaving) is False
    page.focus("#prompt-goodbye")
    page.keyboard.type(" Bye now.")
    assert page.evaluate(leaving) is True
    page.locator("#autosave", has_text="Draft saved").wait_for()
    assert page.evaluate(leaving) is False
    page.close()
