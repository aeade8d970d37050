"""Security headers on every response, a request body limit, and roles enforced on every route."""

from __future__ import annotations

import pytest
from starlette.routing import Route

from tests.conftest import ACME, ACME_NUMBER, CALLER, Service
from tests.test_manage_http import PASSWORD, csrf_of, sign_in
from tests.user_hashes import quick_hash

MANAGER_ONLY_POSTS = {
    "/manage/script",
    "/manage/script/rollback",
    "/manage/message-types",
    "/manage/api/draft",
    "/manage/business/frequency",
}
ADMIN_ONLY = {
    "/manage/users",
    "/manage/users/change",
    "/manage/businesses",
    "/manage/business/numbers",
    "/manage/business/locales",
}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/try"),
        ("GET", "/login"),
        ("GET", "/healthz"),
        ("GET", "/manage"),
        ("POST", "/twilio/voice"),
        ("GET", "/static/style.css"),
        ("GET", "/no-such-page"),
    ],
)
async def test_every_response_carries_the_security_headers(service: Service, method: str, path: str) -> None:
    response = await service.client.request(method, path)
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


async def test_a_huge_webhook_body_gets_413_and_writes_nothing(service: Service) -> None:
    before = (await service.store.verify()).count
    params = service.twilio.call_params("CA" + "7" * 32, ACME_NUMBER, CALLER) | {"Junk": "x" * 300_000}
    response = await service.twilio.post("/twilio/voice", params)
    assert response.status_code == 413
    assert (await service.store.verify()).count == before


async def test_a_huge_chunked_body_without_length_gets_413(service: Service) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b"a=" + b"x" * 10_000 + b"&"

    response = await service.client.post(
        "/twilio/voice", content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 413


def app_routes(service: Service) -> list[tuple[str, str]]:
    app = service.client._transport.app  # type: ignore[attr-defined]
    found = []
    for route in app.routes:
        if isinstance(route, Route) and route.path.startswith("/manage"):
            found += [(method, route.path) for method in sorted(route.methods or ()) if method != "HEAD"]
    return found


@pytest.mark.parametrize("role", ["anonymous", "auditor", "manager", "admin"])
async def test_roles_are_enforced_on_every_manage_route(service: Service, role: str) -> None:
    await service.store.add_user("mia", "manager", quick_hash(PASSWORD), author="test")
    await service.store.add_user("aldo", "auditor", quick_hash(PASSWORD), author="test")
    await service.store.add_user("root", "admin", quick_hash(PASSWORD), author="test")
    # A second version in force, so that a rollback to version 1 publishes a third (publishing
    # the text already in force is a no-op).
    text = (await service.store.script_version(ACME, "en-US")).text
    second = text.replace("We would like", "We, Acme, would like", 1)
    await service.store.publish_script(ACME, "en-US", second, "mia")
    token = ""
    if role != "anonymous":
        await sign_in(service.client, {"manager": "mia", "auditor": "aldo", "admin": "root"}[role])
        token = csrf_of(await service.client.get("/manage"))
    routes = app_routes(service)
    assert len(routes) >= 8
    for method, path in routes:
        data = {
            "business": ACME,
            "locale": "en-US",
            "version": "1",
            "csrf_token": token,
            "message_types": "delivery updates",
            "action": "save",
            "text": "x",
        }
        if "/api/" in path:
            response = await service.client.request(
                method,
                path,
                json={"business": ACME, "locale": "en-US", "text": "x"},
                headers={"X-CSRF-Token": token} if token else {},
            )
        else:
            query = {"business": ACME, "locale": "en-US", "version": "2"} if method == "GET" else None
            response = await service.client.request(
                method, path, params=query, data=data if method == "POST" else None
            )
        where = f"{role} {method} {path}"
        if role == "anonymous":
            assert response.status_code in (303, 401), where
            assert ACME not in response.text, where
        elif role == "auditor" and method == "POST" and path in MANAGER_ONLY_POSTS:
            assert response.status_code == 403, where
        elif path in ADMIN_ONLY and role != "admin":
            assert response.status_code == 403, where
        else:
            assert response.status_code not in (401, 403), where
    versions = await service.store.script_versions(ACME, "en-US")
    assert len(versions) == (3 if role in ("manager", "admin") else 2)  # only their rollback published
