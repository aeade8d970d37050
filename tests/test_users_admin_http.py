"""Admins manage users from the web: create one for a business, reset, disable; nobody else can."""

from __future__ import annotations

import contextlib
import html
import json
import re
import sqlite3

import pytest

from tests.conftest import ACME, BILINGUAL, Service
from tests.test_manage_http import PASSWORD, csrf_of, sign_in
from tests.user_hashes import quick_hash


@pytest.fixture
async def admin(service: Service) -> Service:
    await service.store.add_user("root", "admin", quick_hash(PASSWORD), author="test")
    await service.store.add_user("mia", "manager", quick_hash(PASSWORD), author="test")
    await sign_in(service.client, "root")
    return service


async def _create(service: Service, **form: str | list[str]) -> tuple[int, str]:
    csrf = csrf_of(await service.client.get("/manage/users"))
    response = await service.client.post("/manage/users", data={"csrf_token": csrf, **form})
    return response.status_code, html.unescape(response.text)


def _password(page: str) -> str:
    found = re.search(r'<code id="password">([^<]+)</code>', page)
    assert found is not None, page
    return found[1]


async def test_an_admin_creates_a_manager_for_one_business_who_then_signs_in(admin: Service) -> None:
    status, page = await _create(admin, name=" Nora ", role="manager", business=[ACME])
    assert status == 201 and "Created manager nora." in page
    password = _password(page)
    nora = await admin.store.get_user("nora")
    assert nora is not None and nora.businesses == (ACME,) and nora.role == "manager"
    admin.client.cookies.clear()
    assert (await sign_in(admin.client, "nora", password)).status_code == 303
    index = html.unescape((await admin.client.get("/manage")).text)
    assert ACME in index and BILINGUAL not in index
    with contextlib.closing(sqlite3.connect(admin.db_url.removeprefix("sqlite:///"))) as conn:
        rows = conn.execute("SELECT body FROM events WHERE kind = 'user'").fetchall()
    bodies = [json.loads(body)["data"] for (body,) in rows]
    assert {"name": "nora", "role": "manager", "author": "root", "businesses": [ACME]} in bodies


@pytest.mark.parametrize(
    ("form", "says"),
    [
        ({"name": "<script>", "role": "auditor"}, "User name:"),
        ({"name": "x" * 300, "role": "auditor"}, "User name:"),
        ({"name": "ok", "role": "owner"}, "Choose a role"),
        ({"name": "ok", "role": "admin", "business": [ACME]}, "every business"),
        ({"name": "ok", "role": "auditor", "business": ["No Such Shop"]}, "No Such Shop"),
        ({"name": "MIA", "role": "auditor"}, "already exists"),
    ],
)
async def test_bad_new_users_are_refused_with_the_reason(
    admin: Service, form: dict[str, str | list[str]], says: str
) -> None:
    before = await admin.store.list_users()
    status, page = await _create(admin, **form)
    assert status == 400 and says in page
    assert await admin.store.list_users() == before


async def test_reset_password_disable_and_end_sessions_take_effect_at_once(admin: Service) -> None:
    csrf = csrf_of(await admin.client.get("/manage/users"))
    reset = await admin.client.post(
        "/manage/users/change", data={"csrf_token": csrf, "name": "mia", "change": "reset"}
    )
    new = _password(reset.text)
    admin.client.cookies.clear()
    assert (await sign_in(admin.client, "mia")).status_code == 401  # the old password is gone
    assert (await sign_in(admin.client, "mia", new)).status_code == 303
    mia_cookie = dict(admin.client.cookies)
    admin.client.cookies.clear()
    await sign_in(admin.client, "root")
    csrf = csrf_of(await admin.client.get("/manage/users"))
    await admin.client.post(
        "/manage/users/change", data={"csrf_token": csrf, "name": "mia", "change": "disable"}
    )
    assert (await admin.store.get_user("mia")).disabled  # type: ignore[union-attr]
    admin.client.cookies.clear()
    admin.client.cookies.update(mia_cookie)
    assert (await admin.client.get("/manage")).status_code == 303  # her session ended with it
    assert (await sign_in(admin.client, "mia", new)).status_code == 401


async def test_an_admin_cannot_disable_themself(admin: Service) -> None:
    csrf = csrf_of(await admin.client.get("/manage/users"))
    response = await admin.client.post(
        "/manage/users/change", data={"csrf_token": csrf, "name": "root", "change": "disable"}
    )
    assert response.status_code == 400 and not (await admin.store.get_user("root")).disabled  # type: ignore[union-attr]


@pytest.mark.parametrize("role", ["manager", "auditor"])
async def test_only_admins_reach_the_users_pages(service: Service, role: str) -> None:
    await service.store.add_user("someone", role, quick_hash(PASSWORD), author="test")  # type: ignore[arg-type]
    await sign_in(service.client, "someone")
    assert (await service.client.get("/manage/users")).status_code == 403
    page = await service.client.get("/manage")
    response = await service.client.post(
        "/manage/users", data={"csrf_token": csrf_of(page), "name": "sneaky", "role": "admin"}
    )
    assert response.status_code == 403 and await service.store.get_user("sneaky") is None


async def test_user_changes_need_the_csrf_token(admin: Service) -> None:
    response = await admin.client.post("/manage/users", data={"name": "sneaky", "role": "admin"})
    assert response.status_code == 403 and await admin.store.get_user("sneaky") is None
