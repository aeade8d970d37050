"""Users from the web. In the browser: an admin creates a manager for one business, copies the
password shown once, and that manager signs in and sees only that business (last in the file:
the sync browser fixture outlives the async tests). Hostile forms (markup in a name, an unknown
business, oversized, replayed after sign-out) change nothing."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest

from tests.conftest import ACME, BILINGUAL, Service
from tests.live_server import SITE_PASSWORD, ivr
from tests.page_walk import DOC_IMAGES, serious_violations
from tests.test_manage_http import PASSWORD, csrf_of, sign_in
from tests.user_hashes import quick_hash

DEMO = "Demo Bakery"


@pytest.fixture
async def admin(service: Service) -> Service:
    await service.store.add_user("root", "admin", quick_hash(PASSWORD), author="test")
    assert (await sign_in(service.client, "root")).status_code == 303
    return service


@pytest.mark.parametrize(
    ("form", "status", "says"),
    [
        ({"name": "<b>eve</b>", "role": "manager"}, 400, "User name"),
        ({"name": "eve", "role": "manager", "business": ["No Such Shop"]}, 400, "No Such Shop"),
        ({"name": "eve", "role": "owner"}, 400, "Choose a role"),
        ({"name": "eve", "role": "admin", "business": [ACME]}, 400, "every business"),
        ({"name": "e" * 5000, "role": "manager"}, 400, "User name"),
    ],
)
async def test_hostile_new_users_are_refused_in_words_and_nobody_is_created(
    admin: Service, form: dict[str, object], status: int, says: str
) -> None:
    before = await admin.store.list_users()
    csrf = csrf_of(await admin.client.get("/manage/users"))
    response = await admin.client.post("/manage/users", data={"csrf_token": csrf, **form})  # type: ignore[arg-type]
    assert response.status_code == status
    assert says in html.unescape(response.text) and "<b>eve</b>" not in response.text
    assert await admin.store.list_users() == before


async def test_an_oversized_or_replayed_form_changes_nothing(admin: Service) -> None:
    await admin.store.add_user("mia", "manager", quick_hash(PASSWORD), author="test", businesses=[BILINGUAL])
    csrf = csrf_of(await admin.client.get("/manage/users"))
    oversized = await admin.client.post("/manage/users", content=b"name=x&" + b"x" * 300_000)
    assert oversized.status_code == 413
    reset = {"csrf_token": csrf, "name": "mia", "change": "reset"}
    await admin.client.post("/logout", data={"csrf_token": csrf})
    before = await admin.store.get_user("mia")
    replayed = await admin.client.post("/manage/users/change", data=reset)
    assert replayed.status_code == 303 and replayed.headers["location"].startswith("/login")
    assert await admin.store.get_user("mia") == before
    assert await admin.store.get_user("x") is None


async def test_the_password_is_shown_once_and_kept_only_as_a_hash(admin: Service) -> None:
    csrf = csrf_of(await admin.client.get("/manage/users"))
    created = await admin.client.post(
        "/manage/users", data={"csrf_token": csrf, "name": "nora", "role": "auditor"}
    )
    found = re.search(r'<code id="password">([^<]+)</code>', created.text)
    assert found is not None
    stored = await admin.store.get_user("nora")
    assert stored is not None and found[1] not in stored.password_hash
    assert stored.password_hash.startswith("$argon2")
    assert found[1] not in (await admin.client.get("/manage/users")).text


@pytest.mark.slow
def test_an_admin_creates_a_manager_for_one_business_in_the_browser_who_signs_in_and_sees_only_it(
    browser: Any,
    site: tuple[str, dict[str, str]],
) -> None:
    base, env = site
    assert ivr(env, "user", "add", "root", "--role", "admin", stdin=SITE_PASSWORD + "\n").returncode == 0
    other = ivr(
        env, "business", "add", "--name", "Other Shop", "--number", "+15550004001", "--message-type", "offers"
    )
    assert other.returncode == 0, other.stderr
    context = browser.new_context(viewport={"width": 1000, "height": 1000})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page = context.new_page()
    page.goto(f"{base}/manage/users")
    page.get_by_label("User name").fill("root")
    page.get_by_label("Password").fill(SITE_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/manage/users")
    page.get_by_label("User name (letters").fill("nora")
    page.get_by_label("Role").select_option("manager")
    page.get_by_label(DEMO).check()
    page.get_by_role("button", name="Add user and show a password").click()
    page.locator("#message", has_text="Created manager nora.").wait_for()
    password = page.inner_text("#password")
    assert len(password) >= 16
    page.get_by_role("button", name="Copy").click()
    page.locator("#copy-status", has_text="Copied").wait_for()
    assert page.evaluate("() => navigator.clipboard.readText()") == password
    row = page.locator("#users tr", has_text="nora")
    assert "manager" in row.inner_text() and DEMO in row.inner_text() and "never" in row.inner_text()
    DOC_IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOC_IMAGES / "users-page.png"), full_page=True)
    assert not serious_violations(page), "axe-core on the page with the password shown"
    page.reload()  # shown once: a reload (a GET) does not show it again
    assert page.locator("#password").count() == 0 and password not in page.content()
    context.close()

    nora = browser.new_context(viewport={"width": 1000, "height": 1000})
    page = nora.new_page()
    page.goto(f"{base}/manage")
    page.get_by_label("User name").fill("nora")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/manage")
    assert page.get_by_role("heading", name=DEMO).count() == 1
    assert "Other Shop" not in page.content()
    assert page.goto(f"{base}/manage/business?name=Other+Shop").status == 404  # type: ignore[union-attr]
    assert page.goto(f"{base}/manage/users").status == 403  # type: ignore[union-attr]
    nora.close()
    listed = ivr(env, "user", "list").stdout
    nora_line = next(line for line in listed.splitlines() if line.startswith("nora"))
    assert "never" not in nora_line, listed  # the sign-in is seen
