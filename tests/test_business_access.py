"""Users and tokens of one business never see or change another's: every route, walked as each."""

from __future__ import annotations

import html

import httpx
import pytest

from ivr.api.consent import new_token, token_sha256
from tests.conftest import ACME, ACME_NUMBER, BILINGUAL, BILINGUAL_NUMBER, CALLER, Service
from tests.test_manage_http import PASSWORD, csrf_of, sign_in
from tests.user_hashes import quick_hash

OTHER = {ACME: BILINGUAL, BILINGUAL: ACME}
LOCALE = {ACME: "en-US", BILINGUAL: "es-ES"}
NUMBER = {ACME: ACME_NUMBER, BILINGUAL: BILINGUAL_NUMBER}


@pytest.fixture
async def two_businesses(service: Service) -> tuple[Service, dict[str, str]]:
    """A decision in each business (its CallSid by business), a manager and an auditor of each."""
    sids = {
        ACME: (await service.twilio.call(ACME_NUMBER, CALLER, ["1"])).call_sid,
        BILINGUAL: (await service.twilio.call(BILINGUAL_NUMBER, CALLER, ["1", "1"])).call_sid,
    }
    for business, prefix in ((ACME, "acme"), (BILINGUAL, "sol")):
        for role in ("manager", "auditor"):
            await service.store.add_user(
                f"{prefix}-{role}", role, quick_hash(PASSWORD), author="test", businesses=[business]
            )
    return service, sids


async def _as(client: httpx.AsyncClient, name: str) -> str:
    client.cookies.clear()
    assert (await sign_in(client, name)).status_code == 303
    return csrf_of(
        await client.get(
            f"/manage/script?business={ACME if 'acme' in name else BILINGUAL}"
            f"&locale={'en-US' if 'acme' in name else 'es-ES'}"
        )
    )


@pytest.mark.parametrize(("business", "prefix"), [(ACME, "acme"), (BILINGUAL, "sol")])
@pytest.mark.parametrize("role", ["manager", "auditor"])
async def test_every_page_and_download_is_limited_to_the_users_business(
    two_businesses: tuple[Service, dict[str, str]], business: str, prefix: str, role: str
) -> None:
    service, sids = two_businesses
    client, other = service.client, OTHER[business]
    await _as(client, f"{prefix}-{role}")
    own_sid, other_sid = sids[business], sids[other]

    index = html.unescape((await client.get("/manage")).text)
    assert business in index and other not in index
    gets = {
        "/manage/script": {"business": other, "locale": LOCALE[other]},
        "/manage/script/diff": {"business": other, "locale": LOCALE[other], "version": "1"},
        "/manage/script/compare": {"business": other, "locale": LOCALE[other], "a": "1", "b": "1"},
        "/manage/quality": {"business": other},
        "/manage/quality.csv": {"business": other},
        "/manage/compliance": {"business": other},
        "/audit/receipt": {"call_sid": other_sid},
        "/audit/export": {"business": other, "format": "csv"},
        "/manage/business": {"name": other},
    }
    for path, params in gets.items():
        response = await client.get(path, params=params)
        assert response.status_code == 404, (path, response.status_code)
        assert other_sid not in response.text.replace(f"call {other_sid!r}", "")  # only the echo
    unknown = await client.get("/audit/receipt", params={"call_sid": "CA" + "0" * 32})
    foreign = await client.get("/audit/receipt", params={"call_sid": other_sid})
    assert foreign.text.replace(other_sid, "CA" + "0" * 32) == unknown.text  # the same as none at all
    assert (await client.get("/audit/receipt", params={"call_sid": own_sid})).status_code == 200
    search = html.unescape((await client.get("/audit", params={"action": "opt_in"})).text)
    assert own_sid in search and other_sid not in search and other not in search
    foreign = html.unescape((await client.get("/audit", params={"business": other})).text)
    assert other_sid not in foreign and "no business named" in foreign
    for fmt in ("csv", "jsonl", "receipts"):
        export = await client.get("/audit/export", params={"format": fmt})
        assert export.status_code == 200 and own_sid in export.text and other_sid not in export.text
    incomplete = (await client.get("/audit/incomplete")).text
    assert other_sid not in incomplete


@pytest.mark.parametrize(("business", "prefix"), [(ACME, "acme"), (BILINGUAL, "sol")])
async def test_a_manager_cannot_change_or_rehearse_another_business(
    two_businesses: tuple[Service, dict[str, str]], business: str, prefix: str
) -> None:
    service, _ = two_businesses
    client, other = service.client, OTHER[business]
    csrf = await _as(client, f"{prefix}-manager")
    published = await service.store.script_version(other, LOCALE[other])
    headers = {"X-CSRF-Token": csrf}
    posts = [
        ("/manage/script", {"business": other, "locale": LOCALE[other], "text": published.text,
                            "action": "publish", "csrf_token": csrf}),
        ("/manage/script/rollback", {"business": other, "locale": LOCALE[other], "version": "1",
                                     "csrf_token": csrf}),
        ("/manage/message-types", {"business": other, "message_types": "spam", "csrf_token": csrf}),
        ("/manage/business/frequency", {"business": other, "locale": LOCALE[other], "frequency": "daily",
                                        "csrf_token": csrf}),
    ]  # fmt: skip
    for path, form in posts:
        response = await client.post(path, data=form)
        assert response.status_code == 404, (path, response.status_code)
    for api in ("/manage/api/lint", "/manage/api/draft", "/manage/api/changes"):
        answer = await client.post(
            api,
            json={"business": other, "locale": LOCALE[other], "text": published.text + "# x\n"},
            headers=headers,
        )
        assert answer.status_code == 404, (api, answer.status_code)
    form = {"business": other, "locale": LOCALE[other], "text": published.text, "view": "form",
            "prompt.goodbye": "Bye.", "action": "rehearse", "csrf_token": csrf}  # fmt: skip
    assert (await client.post("/manage/script", data=form)).status_code == 404
    assert await service.store.script_draft(other, LOCALE[other]) is None
    rehearse = await client.post(
        "/try/api/calls", json={"to": NUMBER[other], "from": CALLER}, headers=headers
    )
    assert rehearse.status_code == 403
    assert (await service.store.script_version(other, LOCALE[other])).version == published.version
    assert (await service.store.get_business(other)).message_types != ("spam",)
    admins_only = [
        ("/manage/business/numbers", {"business": other, "change": "add", "number": "+15550009999"}),
        ("/manage/business/numbers", {"business": business, "change": "add", "number": "+15550009999"}),
        ("/manage/business/locales", {"business": business, "locale": "es-ES"}),
        ("/manage/businesses", {"name": "Mine", "numbers": "+15550009998", "message_types": "x"}),
    ]
    for path, form in admins_only:
        response = await client.post(path, data={**form, "csrf_token": csrf})
        assert response.status_code == 403, (path, response.status_code)
    assert (await service.store.business_for_number("+15550009999")) is None


async def test_a_token_answers_only_for_its_business(two_businesses: tuple[Service, dict[str, str]]) -> None:
    service, _ = two_businesses
    secret = new_token()
    await service.store.add_api_token("acme-crm", token_sha256(secret), author="test", businesses=[ACME])
    auth = {"Authorization": f"Bearer {secret}"}
    own = await service.client.get("/api/consent", params={"phone": CALLER, "business": ACME}, headers=auth)
    assert own.status_code == 200 and own.json()["opted_in"] is True
    other = await service.client.get(
        "/api/consent", params={"phone": CALLER, "business": BILINGUAL}, headers=auth
    )
    assert other.status_code == 404 and "opted_in" not in other.text
    missing = await service.client.get(
        "/api/consent", params={"phone": CALLER, "business": "No Such Shop"}, headers=auth
    )
    assert missing.json() == {"error": "no business named 'No Such Shop'"}
    assert other.json() == {"error": f"no business named {BILINGUAL!r}"}  # the same answer


async def test_an_unlimited_auditor_and_an_admin_still_see_every_business(
    two_businesses: tuple[Service, dict[str, str]],
) -> None:
    service, sids = two_businesses
    await service.store.add_user("root", "admin", quick_hash(PASSWORD), author="test")
    await service.store.add_user("aldo", "auditor", quick_hash(PASSWORD), author="test")
    for name in ("root", "aldo"):
        service.client.cookies.clear()
        await sign_in(service.client, name)
        export = (await service.client.get("/audit/export", params={"format": "csv"})).text
        assert sids[ACME] in export and sids[BILINGUAL] in export
