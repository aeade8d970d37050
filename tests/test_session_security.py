"""Sessions as an attacker sees them: forged cookies, copied cookies, idle and ended sessions."""

from __future__ import annotations

from itsdangerous import URLSafeTimedSerializer

from ivr.auth import SESSION_COOKIE
from ivr.runtime import SESSION_SECRET_SETTING, secret_key_for
from ivr.settings import Settings
from tests.conftest import Service
from tests.test_manage_http import sign_in, users  # noqa: F401  (fixture)


def _forged(key: str) -> str:
    return URLSafeTimedSerializer(key, salt="ivr-session").dumps({"name": "mia", "role": "manager", "csrf": "x"})


async def test_a_cookie_signed_with_the_empty_key_is_refused(users: Service) -> None:  # noqa: F811
    users.client.cookies.set(SESSION_COOKIE, _forged(""))
    response = await users.client.get("/manage")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


async def test_a_cookie_signed_with_another_key_is_refused(users: Service) -> None:  # noqa: F811
    users.client.cookies.set(SESSION_COOKIE, _forged("some-other-key-0123456789abcdef"))
    response = await users.client.get("/manage/api/lint", headers={"Accept": "application/json"})
    assert response.status_code in (303, 401, 405)
    page = await users.client.get("/manage")
    assert page.status_code == 303


async def test_the_session_key_is_random_kept_in_the_database_and_never_empty(users: Service) -> None:  # noqa: F811
    kept = await users.store.get_setting(SESSION_SECRET_SETTING)
    assert kept is not None and len(kept) >= 32
    again = await secret_key_for(Settings(database_url=users.db_url), users.store)
    assert again == kept
    chosen = await secret_key_for(Settings(database_url=users.db_url, secret_key="x" * 40), users.store)
    assert chosen == "x" * 40


async def test_a_real_sign_in_still_works(users: Service) -> None:  # noqa: F811
    response = await sign_in(users.client, "mia")
    assert response.status_code == 303
    assert (await users.client.get("/manage")).status_code == 200
