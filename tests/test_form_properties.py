"""Hostile input to every form and JSON endpoint of the pages: a 4xx or a page, never a 500,
and never a change made without a signed-in manager's valid CSRF token (Hypothesis)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ACME, Service
from tests.test_manage_http import PASSWORD, csrf_of, sign_in
from tests.user_hashes import quick_hash

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
hostile = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        ["", "\x00", "x" * 70_000, ACME, "en-US", "1", "-1", "publish", "save", "{{ 7*7 }}", "<script>"]
    ),
)
fields = st.dictionaries(
    st.sampled_from(
        [
            "name",
            "password",
            "csrf_token",
            "next",
            "business",
            "locale",
            "text",
            "action",
            "version",
            "message_types",
            "phone",
        ]
    ),
    hostile,
    max_size=7,
)
FORM_ROUTES = ["/login", "/logout", "/manage/script", "/manage/script/rollback", "/manage/message-types"]
JSON_ROUTES = ["/manage/api/lint", "/manage/api/speech", "/try/api/calls", "/try/api/calls/x/keys"]
JSON_ROUTES += ["/manage/api/draft", "/manage/api/changes"]
QUERY_ROUTES = [
    "/audit",
    "/audit/receipt",
    "/audit/export",
    "/manage/script",
    "/manage/script/diff",
    "/manage/script/compare",
    "/manage/quality",
    "/api/consent",
]


async def changes(service: Service) -> tuple[int, int]:
    versions = len(await service.store.script_versions(ACME, "en-US"))
    return versions, (await service.store.verify()).count


@SETTINGS
@given(path=st.sampled_from(FORM_ROUTES), form=fields, signed_in=st.booleans())
async def test_hostile_forms_never_500_and_never_change_anything_without_csrf(
    service: Service, path: str, form: dict[str, str], signed_in: bool
) -> None:
    if signed_in and await service.store.get_user("mia") is None:
        await service.store.add_user("mia", "manager", quick_hash(PASSWORD), author="test")
    if signed_in:
        await sign_in(service.client, "mia")
    else:
        service.client.cookies.clear()
    before = await changes(service)
    response = await service.client.post(path, data={k: v for k, v in form.items() if k != "csrf_token"})
    assert response.status_code < 500, (path, form, response.text[:200])
    assert await changes(service) == before


@SETTINGS
@given(
    path=st.sampled_from(JSON_ROUTES),
    body=st.one_of(
        st.binary(max_size=200), st.just(b'{"text": 5}'), st.just(b"[]"), st.just(b'{"to": null}')
    ),
)
async def test_hostile_json_bodies_never_500(service: Service, path: str, body: bytes) -> None:
    response = await service.client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code < 500, (path, body, response.text[:200])


@SETTINGS
@given(path=st.sampled_from(QUERY_ROUTES), query=fields)
async def test_hostile_queries_to_pages_never_500(service: Service, path: str, query: dict[str, str]) -> None:
    if await service.store.get_user("aldo") is None:
        await service.store.add_user("aldo", "auditor", quick_hash(PASSWORD), author="test")
        await sign_in(service.client, "aldo")
    query = {k: v.replace("\x00", "") for k, v in query.items() if len(v) < 5000}
    response = await service.client.get(path, params=query)
    assert response.status_code < 500, (path, query, response.text[:200])


async def test_a_valid_csrf_token_is_still_needed_after_hostile_posts(service: Service) -> None:
    await service.store.add_user("mia", "manager", quick_hash(PASSWORD), author="test")
    await sign_in(service.client, "mia")
    token = csrf_of(await service.client.get("/manage"))
    response = await service.client.post(
        "/manage/message-types",
        data={"business": ACME, "message_types": "delivery updates\nparcel tracking", "csrf_token": token},
    )
    assert response.status_code == 303
    assert (await service.store.get_business(ACME)).message_types == ("delivery updates", "parcel tracking")


@SETTINGS
@given(path=st.sampled_from(FORM_ROUTES[2:]), form=fields)
async def test_hostile_forms_with_a_valid_csrf_token_still_never_500(
    service: Service, path: str, form: dict[str, str]
) -> None:
    if await service.store.get_user("mia") is None:
        await service.store.add_user("mia", "manager", quick_hash(PASSWORD), author="test")
    await sign_in(service.client, "mia")
    token = csrf_of(await service.client.get("/manage"))
    response = await service.client.post(path, data=form | {"csrf_token": token})
    assert response.status_code < 500, (path, form, response.text[:200])
    assert (await service.store.verify()).intact
