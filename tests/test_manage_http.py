"""Sign-in, roles and CSRF on /manage, and publishing rules, through the real app."""

from __future__ import annotations

import re
import sqlite3

import httpx
import pytest

from tests.conftest import ACME, ACME_NUMBER, CALLER, Service
from tests.user_hashes import quick_hash

PASSWORD = "a long enough password"


async def sign_in(client: httpx.AsyncClient, name: str, password: str = PASSWORD) -> httpx.Response:
    page = await client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    return await client.post("/login", data={"name": name, "password": password, "csrf_token": token[1]})


def csrf_of(page: httpx.Response) -> str:
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    return token[1]


@pytest.fixture
async def users(service: Service) -> Service:
    await service.store.add_user("mia", "manager", quick_hash(PASSWORD), author="test")
    await service.store.add_user("aldo", "auditor", quick_hash(PASSWORD), author="test")
    return service


SCRIPT = {"business": ACME, "locale": "en-US"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/manage"),
        ("GET", "/manage/script?business=Acme+Parcels&locale=en-US"),
        ("GET", "/manage/script/diff?business=Acme+Parcels&locale=en-US&version=2"),
        ("POST", "/manage/script"),
        ("POST", "/manage/script/rollback"),
        ("POST", "/manage/message-types"),
    ],
)
async def test_anonymous_visitors_are_sent_to_sign_in_and_see_no_data(
    users: Service, method: str, path: str
) -> None:
    response = await users.client.request(method, path, data={"business": ACME, "text": "x"})
    assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")
    assert ACME not in response.text


@pytest.mark.parametrize("path", ["/manage/api/lint", "/manage/api/speech"])
async def test_anonymous_api_calls_get_401(users: Service, path: str) -> None:
    response = await users.client.post(path, json={"business": ACME, "locale": "en-US", "text": ""})
    assert response.status_code == 401


async def test_session_cookie_is_httponly_and_samesite_strict(users: Service) -> None:
    response = await sign_in(users.client, "mia")
    assert response.status_code == 303 and response.headers["location"] == "/manage"
    cookie = response.headers["set-cookie"].lower()
    assert "ivr_session=" in cookie and "httponly" in cookie and "samesite=strict" in cookie


async def test_wrong_password_is_refused_and_five_failures_lock_the_account(users: Service) -> None:
    for _ in range(5):
        assert (await sign_in(users.client, "mia", "wrong password!")).status_code == 401
    locked = await sign_in(users.client, "mia")
    assert locked.status_code == 429 and "Too many failed sign-ins" in locked.text
    assert "ivr_session" not in locked.headers.get("set-cookie", "")


async def test_sign_in_without_its_csrf_token_is_refused(users: Service) -> None:
    response = await users.client.post("/login", data={"name": "mia", "password": PASSWORD})
    assert response.status_code == 403


async def test_auditor_reads_but_cannot_publish(users: Service) -> None:
    await sign_in(users.client, "aldo")
    page = await users.client.get("/manage/script", params=SCRIPT)
    assert page.status_code == 200 and "readonly" in page.text and 'id="publish"' not in page.text
    text = (await users.store.script_version(ACME, "en-US")).text
    response = await users.client.post(
        "/manage/script", data={**SCRIPT, "text": text, "action": "publish", "csrf_token": csrf_of(page)}
    )
    assert response.status_code == 403
    assert len(await users.store.script_versions(ACME, "en-US")) == 1


async def test_manager_post_without_the_csrf_token_is_refused(users: Service) -> None:
    await sign_in(users.client, "mia")
    text = (await users.store.script_version(ACME, "en-US")).text
    response = await users.client.post("/manage/script", data={**SCRIPT, "text": text, "action": "publish"})
    assert response.status_code == 403
    assert len(await users.store.script_versions(ACME, "en-US")) == 1


async def test_a_script_breaking_the_policy_is_not_published_but_kept_as_a_draft(users: Service) -> None:
    await sign_in(users.client, "mia")
    page = await users.client.get("/manage/script", params=SCRIPT)
    consent = re.compile(r'^consent = """.*?"""', re.S | re.M)
    text = consent.sub(
        'consent = "Hi from {{ business }}. Press {{ keys.opt_in }} to agree."',
        (await users.store.script_version(ACME, "en-US")).text,
    )
    response = await users.client.post(
        "/manage/script", data={**SCRIPT, "text": text, "action": "publish", "csrf_token": csrf_of(page)}
    )
    assert response.status_code == 422 and "[whatsapp]" in response.text
    assert [v.version for v in await users.store.script_versions(ACME, "en-US")] == [1]
    draft = await users.store.script_draft(ACME, "en-US")
    assert draft is not None and draft.author == "mia"


async def test_publish_and_rollback_are_versions_callers_hear_and_chained_audit_events(
    users: Service,
) -> None:
    await sign_in(users.client, "mia")
    page = await users.client.get("/manage/script", params=SCRIPT)
    original = (await users.store.script_version(ACME, "en-US")).text
    edited = original.replace("Hello, thank you for calling", "Good day, thanks for calling")
    published = await users.client.post(
        "/manage/script", data={**SCRIPT, "text": edited, "action": "publish", "csrf_token": csrf_of(page)}
    )
    assert published.status_code == 200 and "Published version 2" in published.text
    call = await users.twilio.call(ACME_NUMBER, CALLER, ["2"])
    assert "Good day, thanks for calling Acme Parcels" in call.transcript
    rolled = await users.client.post(
        "/manage/script/rollback", data={**SCRIPT, "version": "1", "csrf_token": csrf_of(page)}
    )
    assert "version 3 has the text of version 1" in rolled.text
    assert (await users.store.script_version(ACME, "en-US")).text == original
    diff = await users.client.get("/manage/script/diff", params={**SCRIPT, "version": "2"})
    assert "+Good day, thanks for calling" in diff.text.replace("&#43;", "+")
    with sqlite3.connect(users.db_url.removeprefix("sqlite:///")) as db:
        changes = [b for (b,) in db.execute("SELECT body FROM events WHERE kind = 'script' ORDER BY seq")]
    assert len(changes) == 2 and '"author":"mia"' in changes[0] and "rolled back to version 1" in changes[1]
    assert (await users.store.verify()).intact


async def test_live_lint_api_reports_problems_and_the_rendered_prompts(users: Service) -> None:
    await sign_in(users.client, "aldo")
    page = await users.client.get("/manage/script", params=SCRIPT)
    text = (await users.store.script_version(ACME, "en-US")).text
    ok = await users.client.post(
        "/manage/api/lint", json={**SCRIPT, "text": text}, headers={"X-CSRF-Token": csrf_of(page)}
    )
    assert ok.status_code == 200 and ok.json()["problems"] == []
    assert "Acme Parcels" in ok.json()["preview"]["consent"] and "<Gather" in ok.json()["twiml"]
    bad = await users.client.post(
        "/manage/api/lint", json={**SCRIPT, "text": "not = [toml"}, headers={"X-CSRF-Token": csrf_of(page)}
    )
    assert bad.json()["problems"][0].startswith("error: invalid TOML")
    forged = await users.client.post("/manage/api/lint", json={**SCRIPT, "text": text})
    assert forged.status_code == 403


async def test_rolling_back_to_a_version_that_does_not_exist_is_a_404(users: Service) -> None:
    await sign_in(users.client, "mia")
    page = await users.client.get("/manage/script", params=SCRIPT)
    response = await users.client.post(
        "/manage/script/rollback", data={**SCRIPT, "version": "99", "csrf_token": csrf_of(page)}
    )
    assert response.status_code == 404
