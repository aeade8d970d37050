"""Businesses from the web: admins create them and move numbers and languages; managers change
the frequency; every change is chained with its author; hostile forms change nothing."""

from __future__ import annotations

import html
import json
from typing import Any

import httpx
import pytest

from consent_store import ConsentStore
from consent_store.exceptions import BusinessChangeRefused, NumberTaken
from ivr.businesses import set_whatsapp_numbers, with_frequency
from ivr.lint_worker import WORKER
from tests.conftest import ACME, ACME_NUMBER, BILINGUAL, CALLER, Service
from tests.live_server import SITE_PASSWORD, ivr
from tests.page_walk import DOC_IMAGES, serious_violations
from tests.test_manage_http import PASSWORD, csrf_of, sign_in
from tests.test_postgres_contract import store
from tests.user_hashes import quick_hash
from voice_scripts import default_script_text, parse_script

NEW = "Harbour Florist"
__all__ = ["store"]  # the fixture: SQLite and PostgreSQL
pytest_plugins = ["tests.pg_server"]


@pytest.fixture
async def admin(service: Service) -> Service:
    await service.store.add_user("root", "admin", quick_hash(PASSWORD), author="test")
    await service.store.add_user("mia", "manager", quick_hash(PASSWORD), author="test", businesses=[ACME])
    await service.store.add_user("aldo", "auditor", quick_hash(PASSWORD), author="test")
    assert (await sign_in(service.client, "root")).status_code == 303
    return service


async def _csrf(client: httpx.AsyncClient) -> str:
    return csrf_of(await client.get("/manage/businesses"))


async def _create(service: Service, **form: str | list[str]) -> httpx.Response:
    csrf = await _csrf(service.client)
    return await service.client.post("/manage/businesses", data={"csrf_token": csrf, **form})


async def _business_events(service: Service, name: str) -> list[dict[str, object]]:
    rows = await service.store._fetchall(
        "SELECT body FROM events WHERE kind = 'business' AND business = ? ORDER BY seq", (name,)
    )
    return [json.loads(row[0])["data"] for row in rows]


async def test_an_admin_creates_a_business_with_two_numbers_and_two_locales_and_callers_reach_it(
    admin: Service,
) -> None:
    response = await _create(
        admin,
        name=f"  {NEW} ",
        numbers="+1 (555) 000-3001\n+15550003002\n",
        message_types="order updates\nevent invitations",
        frequency="no more than two messages a month",
        locale=["en-US", "es-ES"],
    )
    assert response.status_code == 303, response.text
    page = html.unescape((await admin.client.get(response.headers["location"])).text)
    assert f"Created {NEW}." in page and "+15550003001" in page and "+15550003002" in page
    business = await admin.store.get_business(NEW)
    assert business.numbers == ("+15550003001", "+15550003002")
    assert business.locales == ("en-US", "es-ES")
    for caller, number in zip(("+14155550101", "+14155550102"), business.numbers, strict=True):
        call = await admin.twilio.call(number, caller, ["1", "1"])  # English, then agree
        assert "no more than two messages a month" in call.transcript
        standing = await admin.store.standing(caller, NEW)
        assert standing is not None and standing.action == "opt_in"
    created = (await _business_events(admin, NEW))[0]
    assert created["change"] == "created" and created["author"] == "root"


@pytest.mark.parametrize(
    ("form", "says"),
    [
        ({"name": "<script>alert(1)</script>"}, "must not contain '<', '>'"),
        ({"numbers": "555-CALL-NOW"}, "is not a phone number"),
        ({"numbers": ACME_NUMBER}, f"already belongs to business {ACME!r}"),
        ({"name": ACME}, f"A business named {ACME!r} already exists"),
        ({"numbers": "+15550003001\n+1 555 000 3001"}, "the same number is given twice"),
        ({"message_types": "a; b"}, "must not contain ';'"),
        ({"message_types": ""}, "message-type"),
        ({"locale": ["fr-FR"]}, "choose from en-US, es-ES"),
        ({"locale": []}, "tick at least one language"),
        ({"frequency": "daily\nand nightly"}, "one line"),
        ({"name": "x" * 3000}, "at most 2,000 characters"),
        ({"numbers": "\n".join(f"+1555000{n:04d}" for n in range(30))}, "at most 20 lines"),
    ],
)
async def test_a_hostile_or_wrong_new_business_is_refused_in_words_and_nothing_is_written(
    admin: Service, form: dict[str, object], says: str
) -> None:
    before = await admin.store.list_businesses()
    good: dict[str, object] = {
        "name": NEW,
        "numbers": "+15550003001",
        "message_types": "order updates",
        "locale": ["en-US"],
    }
    response = await _create(admin, **{**good, **form})  # type: ignore[arg-type]
    assert response.status_code == 400
    page = html.unescape(response.text)
    assert 'role="alert"' in response.text and says.lower() in page.lower(), page[-3000:]
    assert "<script>alert(1)</script>" not in response.text  # shown escaped, if at all
    assert await admin.store.list_businesses() == before


async def test_numbers_are_added_and_removed_and_clashes_are_refused(admin: Service) -> None:
    csrf = await _csrf(admin.client)
    post = admin.client.post

    async def change(change: str, number: str, business: str = ACME) -> httpx.Response:
        form = {"csrf_token": csrf, "business": business, "change": change, "number": number}
        return await post("/manage/business/numbers", data=form)

    added = await change("add", "+1 555 000 1112")
    assert added.status_code == 200 and "Calls to +15550001112 now reach" in html.unescape(added.text)
    await admin.twilio.call("+15550001112", CALLER, ["1"])
    standing = await admin.store.standing(CALLER, ACME)
    assert standing is not None and standing.action == "opt_in"
    bilingual_number = (await admin.store.get_business(BILINGUAL)).numbers[0]
    clash = await change("add", bilingual_number)
    assert clash.status_code == 400 and f"already belongs to business {BILINGUAL!r}" in html.unescape(
        clash.text
    )
    bad = await change("add", "not a number")
    assert bad.status_code == 400 and "is not a phone number" in html.unescape(bad.text)
    removed = await change("remove", ACME_NUMBER)
    assert removed.status_code == 200 and "no longer reach" in removed.text
    assert (await admin.store.get_business(ACME)).numbers == ("+15550001112",)
    last = await change("remove", "+15550001112")
    assert last.status_code == 400 and "its only number" in last.text
    other = await change("remove", bilingual_number)
    assert other.status_code == 400 and "is not one of its numbers" in other.text
    assert (await admin.store.business_for_number(bilingual_number)).name == BILINGUAL  # type: ignore[union-attr]
    events = [(e["change"], e.get("number"), e["author"]) for e in await _business_events(admin, ACME)]
    assert ("number_added", "+15550001112", "root") in events
    assert ("number_removed", ACME_NUMBER, "root") in events
    assert len(events) == 3  # created, added, removed: refusals wrote nothing
    assert (await admin.store.verify()).intact


async def test_a_locale_is_added_with_its_default_script_and_the_caller_hears_a_menu(admin: Service) -> None:
    csrf = await _csrf(admin.client)
    form = {"csrf_token": csrf, "business": ACME, "locale": "es-ES"}
    added = await admin.client.post("/manage/business/locales", data=form)
    assert added.status_code == 200 and "Added es-ES" in added.text
    assert (await admin.store.get_business(ACME)).locales == ("en-US", "es-ES")
    assert (await admin.store.script_version(ACME, "es-ES")).version == 1
    again = await admin.client.post("/manage/business/locales", data=form)
    assert again.status_code == 400 and "already speaks es-ES" in again.text
    unknown = await admin.client.post("/manage/business/locales", data={**form, "locale": "xx-XX"})
    assert unknown.status_code == 400
    call = await admin.twilio.call(ACME_NUMBER, CALLER, ["2", "1"])  # 2: Spanish in the menu
    assert "WhatsApp" in call.transcript and "Para" in call.transcript, call.transcript
    standing = await admin.store.standing(CALLER, ACME)
    assert standing is not None and standing.action == "opt_in"
    last = (await _business_events(admin, ACME))[-1]
    assert last["change"] == "locale_added" and last["author"] == "root" and last["locale"] == "es-ES"


async def test_a_manager_changes_the_frequency_and_the_linter_still_guards_it(
    admin: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The lint deadline (2 s, tested in its own tests) is not what this tests: on a loaded machine the
    # worker, niced, can take longer to render the default script.
    monkeypatch.setattr(WORKER, "seconds", 60.0)
    admin.client.cookies.clear()
    await sign_in(admin.client, "mia")
    page = await admin.client.get("/manage/business", params={"name": ACME})
    assert page.status_code == 200 and "Add number" not in page.text  # numbers are the admins'
    csrf = csrf_of(page)
    form = {
        "csrf_token": csrf,
        "business": ACME,
        "locale": "en-US",
        "frequency": "at most one message a week",
    }
    changed = await admin.client.post("/manage/business/frequency", data=form)
    assert changed.status_code == 200 and "Published en-US version 2" in changed.text, html.unescape(
        changed.text
    )[-2500:]
    call = await admin.twilio.call(ACME_NUMBER, CALLER, ["1"])
    assert "at most one message a week" in call.transcript
    published = await admin.store.script_version(ACME, "en-US")
    assert published.author == "mia" and 'frequency = "at most one message a week"' in published.text
    hostile = await admin.client.post(
        "/manage/business/frequency", data={**form, "frequency": 'weekly"\nvoice = "x'}
    )
    assert hostile.status_code == 400 and "one line" in hostile.text
    await admin.store.save_draft(ACME, "en-US", published.text + "\n# mine", "mia")
    drafted = await admin.client.post("/manage/business/frequency", data={**form, "frequency": "daily"})
    assert drafted.status_code == 400 and "unpublished draft" in drafted.text
    assert (await admin.store.script_version(ACME, "en-US")).version == 2
    for path, data in (
        ("/manage/business/numbers", {"business": ACME, "change": "add", "number": "+15550009999"}),
        ("/manage/business/locales", {"business": ACME, "locale": "es-ES"}),
        ("/manage/businesses", {"name": "Mine", "numbers": "+15550009998", "message_types": "x"}),
    ):
        refused = await admin.client.post(path, data={"csrf_token": csrf, **data})
        assert refused.status_code == 403, path
    assert (await admin.client.get("/manage/businesses")).status_code == 403
    other = await admin.client.post("/manage/business/frequency", data={**form, "business": BILINGUAL})
    assert other.status_code == 404
    assert (await admin.client.get("/manage/business", params={"name": BILINGUAL})).status_code == 404


async def test_posts_without_the_csrf_token_or_after_sign_out_change_nothing(admin: Service) -> None:
    csrf = await _csrf(admin.client)
    form = {"name": NEW, "numbers": "+15550003001", "message_types": "x", "locale": "en-US"}
    forged = await admin.client.post("/manage/businesses", data={**form, "csrf_token": "forged"})
    assert forged.status_code == 403
    await admin.client.post("/logout", data={"csrf_token": csrf})
    replayed = await admin.client.post("/manage/businesses", data={**form, "csrf_token": csrf})
    assert replayed.status_code == 303 and replayed.headers["location"].startswith("/login")
    numbers = {"csrf_token": csrf, "business": ACME, "change": "add", "number": "+15550003003"}
    assert (await admin.client.post("/manage/business/numbers", data=numbers)).status_code == 303
    assert [b.name for b in await admin.store.list_businesses()] == [ACME, BILINGUAL]
    assert (await admin.store.get_business(ACME)).numbers == (ACME_NUMBER,)
    oversized = await admin.client.post("/manage/businesses", content=b"x" * 300_000)
    assert oversized.status_code == 413


async def test_an_auditor_reads_a_business_page_without_forms(admin: Service) -> None:
    admin.client.cookies.clear()
    await sign_in(admin.client, "aldo")
    page = await admin.client.get("/manage/business", params={"name": ACME})
    assert page.status_code == 200 and '<form method="post" action="/manage/business' not in page.text
    assert "Read the en-US script" in page.text


async def test_a_whatsapp_sender_is_shown_and_its_number_is_nobody_elses(admin: Service) -> None:
    await set_whatsapp_numbers(admin.store, BILINGUAL, ["+15550007777"], "test")
    page = await admin.client.get("/manage/business", params={"name": BILINGUAL})
    assert "WhatsApp senders" in page.text and "+15550007777" in page.text
    csrf = csrf_of(page)
    form = {"csrf_token": csrf, "business": ACME, "change": "add", "number": "+15550007777"}
    clash = await admin.client.post("/manage/business/numbers", data=form)
    assert clash.status_code == 400 and f"belongs to business {BILINGUAL!r}" in html.unescape(clash.text)
    assert (await admin.store.get_business(ACME)).numbers == (ACME_NUMBER,)
    # Its own call number may also be its WhatsApp sender; it still needs a number for calls.
    own = (await admin.store.get_business(BILINGUAL)).numbers[0]
    await set_whatsapp_numbers(admin.store, BILINGUAL, ["+15550007777", own], "test")
    form = {"csrf_token": csrf, "business": BILINGUAL, "change": "remove", "number": own}
    last = await admin.client.post("/manage/business/numbers", data=form)
    assert last.status_code == 400 and "its only number" in last.text


@pytest.mark.parametrize(
    "frequency", ['twice a "month" \\ at most', "no más de 4 al mes", "it's ''' fine", "{{ 7 * 7 }}"]
)
def test_a_frequency_with_quotes_or_braces_is_written_as_words_not_toml_or_template(frequency: str) -> None:
    text = with_frequency(default_script_text("en-US"), frequency)
    assert parse_script(text).frequency == frequency
    assert text.count("\nfrequency = ") == 1 and "voice = " in text


async def test_number_and_locale_changes_are_chained_on_both_backends(store: ConsentStore) -> None:  # noqa: F811
    await store.add_number(ACME, "+15550001112", "root")
    with pytest.raises(NumberTaken):
        await store.add_number(ACME, "+15550100100", "root")  # the demo business's
    await store.remove_number(ACME, "+15550001111", "root")
    with pytest.raises(BusinessChangeRefused, match="its only number"):
        await store.remove_number(ACME, "+15550001112", "root")
    await store.add_locale(ACME, "es-ES", "texto", "root")
    with pytest.raises(BusinessChangeRefused, match="already speaks es-ES"):
        await store.add_locale(ACME, "es-ES", "texto", "root")
    business = await store.get_business(ACME)
    assert business.numbers == ("+15550001112",) and business.locales == ("en-US", "es-ES")
    assert (await store.script_version(ACME, "es-ES")).text == "texto"
    assert (await store.business_for_number("+15550001112")).name == ACME  # type: ignore[union-attr]
    assert await store.business_for_number("+15550001111") is None
    assert (await store.verify()).intact


@pytest.mark.slow
def test_in_the_browser_an_admin_creates_a_business_with_two_numbers_and_two_locales_and_it_is_called(
    browser: Any,
    site: tuple[str, dict[str, str]],
) -> None:
    base, env = site
    added = ivr(env, "user", "add", "root", "--role", "admin", stdin=SITE_PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    page = browser.new_page(viewport={"width": 1000, "height": 1200})
    page.goto(f"{base}/login?next=/manage")
    page.get_by_label("User name").fill("root")
    page.get_by_label("Password").fill(SITE_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Businesses", exact=True).click()
    page.get_by_label("Name callers hear").fill(NEW)
    page.get_by_label("Phone numbers").fill("+1 555 000 3001\n+1 (555) 000-3002")
    page.get_by_label("Message types callers agree to").fill("order updates\nevent invitations")
    page.get_by_label("How often messages come").fill("no more than two messages a month")
    page.get_by_label("es-ES").check()
    page.get_by_role("button", name="Add business").click()
    page.locator("#message", has_text=f"Created {NEW}.").wait_for()
    assert page.locator("#numbers .number").all_inner_texts() == ["+15550003001", "+15550003002"]
    page.get_by_label("Add a number").fill("+1 555 000 3003")
    page.get_by_role("button", name="Add number").click()
    page.locator("#message", has_text="Calls to +15550003003 now reach").wait_for()
    page.get_by_role("button", name="Remove +15550003003").click()
    page.locator("#message", has_text="no longer reach").wait_for()
    DOC_IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOC_IMAGES / "business-page.png"), full_page=True)
    assert not serious_violations(page), "axe-core on the business page after a change"
    page.goto(f"{base}/manage/businesses")
    page.get_by_label("Name callers hear").fill("<b>Bad</b>")
    page.get_by_label("Phone numbers").fill("+1 555 000 3009")
    page.get_by_label("Message types callers agree to").fill("offers")
    page.get_by_role("button", name="Add business").click()
    page.locator("#error", has_text="must not contain").wait_for()
    assert page.input_value("#b-name") == "<b>Bad</b>"  # what was typed is kept
    assert not serious_violations(page), "axe-core on the refused form"
    page.close()

    for caller, number, keys, words in (
        ("+15550100011", "+15550003001", "11", "no more than two messages a month"),
        ("+15550100012", "+15550003002", "21", "WhatsApp"),  # 2: Spanish from the language menu
    ):
        call = ivr(env, "call", "--to", number, "--from", caller, "--keys", keys, "--record")
        assert "Recorded opt_in" in call.stdout and words in call.stdout, call.stdout + call.stderr
    assert "es-ES" in ivr(env, "export", "--format", "jsonl").stdout
    assert ivr(env, "verify").returncode == 0
