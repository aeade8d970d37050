"""Sessions as an attacker sees them: forged cookies, copied cookies, idle and ended sessions."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import time

import pytest
from itsdangerous import URLSafeTimedSerializer

from ivr.exceptions import BadUserName, WeakPassword
from ivr.pages import auth
from ivr.pages.auth import SESSION_COOKIE
from ivr.passwords import check_password_strength, normal_user_name
from ivr.runtime import SESSION_SECRET_SETTING, secret_key_for
from ivr.settings import Settings
from ivr.throttle import MAX_KEYS, SLOW_USER_DELAY_SECONDS, LoginThrottle
from tests.conftest import Service
from tests.test_manage_http import sign_in, users  # noqa: F401  (fixture)
from tests.user_hashes import quick_hash


def _forged(key: str) -> str:
    return URLSafeTimedSerializer(key, salt="ivr-session").dumps(
        {"name": "mia", "role": "manager", "csrf": "x"}
    )


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


def _cookie(service: Service) -> str:
    value = service.client.cookies.get(SESSION_COOKIE)
    assert value
    return value


async def _signed_in_copy(service: Service, cookie: str) -> int:
    """What /manage answers to a browser holding only `cookie` (200: signed in; 303: not)."""
    service.client.cookies.clear()
    service.client.cookies.set(SESSION_COOKIE, cookie)
    return (await service.client.get("/manage")).status_code


async def test_a_copied_cookie_dies_at_sign_out(users: Service) -> None:  # noqa: F811
    await sign_in(users.client, "mia")
    copy = _cookie(users)
    page = await users.client.get("/manage")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    await users.client.post("/logout", data={"csrf_token": token[1]})
    assert await _signed_in_copy(users, copy) == 303


@pytest.mark.parametrize("ending", ["password", "disabled", "sessions_ended"])
async def test_a_password_change_disabling_or_ending_sessions_ends_every_copy(
    users: Service,  # noqa: F811
    ending: str,
) -> None:
    await sign_in(users.client, "mia")
    copy = _cookie(users)
    assert await _signed_in_copy(users, copy) == 200
    if ending == "password":
        await users.store.set_password("mia", quick_hash("another long passphrase here"), author="test")
    elif ending == "disabled":
        await users.store.set_user_disabled("mia", True, author="test")
    else:
        await users.store.end_user_sessions("mia", author="test")
    assert await _signed_in_copy(users, copy) == 303


async def test_an_idle_session_ends(users: Service, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    await sign_in(users.client, "mia")
    copy = _cookie(users)
    idle = users_settings(users).session_idle_seconds
    real = time.time
    monkeypatch.setattr(auth.time, "time", lambda: real() + idle - 120)
    assert await _signed_in_copy(users, copy) == 200  # used: the idle clock starts again
    monkeypatch.setattr(auth.time, "time", lambda: real() + 2 * idle - 240)
    assert await _signed_in_copy(users, copy) == 200
    monkeypatch.setattr(auth.time, "time", lambda: real() + 3 * idle + 60)
    assert await _signed_in_copy(users, copy) == 303


async def test_a_session_ends_after_eight_hours_even_when_used(
    users: Service,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await sign_in(users.client, "mia")
    copy = _cookie(users)
    real = time.time
    for minutes in range(20, 8 * 60, 20):
        monkeypatch.setattr(auth.time, "time", lambda m=minutes: real() + 60 * m)
        assert await _signed_in_copy(users, copy) == 200
    monkeypatch.setattr(auth.time, "time", lambda: real() + 8 * 3600 + 30)
    assert await _signed_in_copy(users, copy) == 303


def users_settings(service: Service) -> Settings:
    return Settings(database_url=service.db_url)


@pytest.mark.parametrize("typed", ["MIA", " mia", "Mia ", "ｍｉａ"])
async def test_user_names_are_normalised_at_sign_in(users: Service, typed: str) -> None:  # noqa: F811
    response = await sign_in(users.client, typed)
    assert response.status_code == 303


@pytest.mark.parametrize("name", ["<script>", "a b", "", "x" * 65, "-mia", "mia\x00", "mia/../x"])
def test_unsafe_user_names_are_refused(name: str) -> None:
    with pytest.raises(BadUserName):
        normal_user_name(name)


@pytest.mark.parametrize(
    "password", ["aaaaaaaaaaaa", "password1234", "qwertyuiop123", "short", "mia-mia-mia-mia", "x" * 2000]
)
def test_weak_passwords_are_refused(password: str) -> None:
    with pytest.raises(WeakPassword):
        check_password_strength(password, "mia-mia")


def test_a_strong_password_is_taken() -> None:
    check_password_strength("correct horse battery staple", "mia")


def test_the_login_throttle_cannot_grow_without_bound() -> None:
    throttle = LoginThrottle()
    for i in range(3 * MAX_KEYS):
        throttle.failed("u" * 200 + str(i), f"10.0.{i % 256}.{i // 256}")
    assert throttle.entries() <= 3 * MAX_KEYS


def test_failures_from_elsewhere_never_lock_a_user_out_of_their_own_address() -> None:
    throttle = LoginThrottle()
    for i in range(500):
        throttle.failed("mia", f"203.0.113.{i % 200}")
    at_home = throttle.check("mia", "198.51.100.7")
    assert not at_home.refused and at_home.delay_seconds <= SLOW_USER_DELAY_SECONDS
    for _ in range(5):
        throttle.failed("mia", "192.0.2.9")
    assert throttle.check("mia", "192.0.2.9").refused  # the guessing address itself is stopped


async def test_failed_sign_ins_do_not_hold_the_event_loop(users: Service) -> None:  # noqa: F811
    page = await users.client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None

    async def wrong(i: int) -> int:
        form = {"name": f"nobody{i}", "password": "wrong password here", "csrf_token": token[1]}
        return (await users.client.post("/login", data=form)).status_code

    async def health() -> float:
        await asyncio.sleep(0.2)
        started = time.perf_counter()
        assert (await users.client.get("/healthz")).status_code == 200
        return time.perf_counter() - started

    *codes, waited = await asyncio.gather(*(wrong(i) for i in range(12)), health())
    assert set(codes) <= {401, 429}
    assert waited < 0.5, f"/healthz waited {waited:.2f} s behind argon2"


async def test_sessions_older_than_eight_hours_are_purged_at_the_next_sign_in(
    users: Service,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await sign_in(users.client, "mia")
    old = _cookie(users)
    real = time.time
    monkeypatch.setattr(auth.time, "time", lambda: real() + 8 * 3600 + 120)
    users.client.cookies.clear()
    await sign_in(users.client, "aldo")
    with contextlib.closing(sqlite3.connect(users.db_url.removeprefix("sqlite:///"))) as conn:
        kept = conn.execute("SELECT user_name FROM web_sessions").fetchall()
    assert kept == [("aldo",)]
    assert await _signed_in_copy(users, old) == 303
