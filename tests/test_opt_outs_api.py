"""POST /api/opt-outs: opt-outs from other systems, chained once, refused hard when malformed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from consent_store import ExportFilter
from ivr.api.consent import new_token, token_sha256
from ivr.evidence.export import render_rows
from tests.conftest import ACME, ACME_NUMBER, BILINGUAL, CALLER, Service

URL = "/api/opt-outs"


pytest_plugins = ["tests.pg_server"]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every test here on both backends (the `service` fixture opens this URL)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ivr.db'}"
    return str(request.getfixturevalue("pg_migrated_url"))


async def token_for(
    service: Service, name: str = "crm", businesses: list[str] | None = None
) -> dict[str, str]:
    token = new_token()
    await service.store.add_api_token(name, token_sha256(token), "test", businesses)
    return {"Authorization": f"Bearer {token}"}


async def event_count(service: Service) -> int:
    return (await service.store.verify()).count


def body(**change: Any) -> dict[str, Any]:
    return {"phone": CALLER, "business": ACME, "channel": "whatsapp", "evidence": {"ticket": 4711}} | change


async def test_an_opt_out_is_recorded_chained_and_the_consent_api_says_no_at_once(service: Service) -> None:
    headers = await token_for(service)
    await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
    consent = await service.client.get(
        "/api/consent", params={"phone": CALLER, "business": ACME}, headers=headers
    )
    assert consent.json()["opted_in"] is True
    response = await service.client.post(URL, json=body(), headers=headers)
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["action"] == "opt_out" and answer["channel"] == "whatsapp" and answer["phone"] == CALLER
    consent = await service.client.get(
        "/api/consent", params={"phone": CALLER, "business": ACME}, headers=headers
    )
    assert consent.json()["opted_in"] is False and consent.json()["record_hash"] == answer["record_hash"]
    rows = [r async for r in service.store.export_decisions(ExportFilter(phone=CALLER))]
    assert [(r.action, r.channel) for r in rows] == [("opt_in", "voice"), ("opt_out", "whatsapp")]
    assert rows[-1].record_hash == answer["record_hash"] and rows[-1].seq == answer["seq"]
    receipt = json.loads(render_rows(rows[-1:], "receipts"))
    assert receipt["evidence"]["channel"] == "whatsapp" and receipt["consent_state"] == "withdrawn"
    verified = await service.store.verify()
    assert verified.intact


async def test_the_record_holds_the_source_token_and_evidence(service: Service) -> None:
    headers = await token_for(service, "helpdesk")
    response = await service.client.post(
        URL, json=body(channel="email", evidence="mail of 2 Dec: 'stop'"), headers=headers
    )
    assert response.status_code == 201
    rows = [r async for r in service.store.export_decisions(ExportFilter(phone=CALLER))]
    assert rows[-1].channel == "email" and rows[-1].call_sid.startswith("api:")
    proof = await service.store.chain_proof(rows[-1].seq)
    assert proof is not None
    raw = proof.record.body
    data = json.loads(raw)["data"]
    assert data["source"] == "api" and data["token_name"] == "helpdesk"
    assert data["evidence"] == "mail of 2 Dec: 'stop'" and data["channel"] == "email"


async def test_the_same_idempotency_key_and_body_answer_the_first_record(service: Service) -> None:
    headers = await token_for(service) | {"Idempotency-Key": "crm-4711"}
    first = await service.client.post(URL, json=body(), headers=headers)
    count = await event_count(service)
    again = await service.client.post(URL, json=body(), headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert await event_count(service) == count
    # Without the header each request is a new opt-out.
    plain = {"Authorization": headers["Authorization"]}
    assert (await service.client.post(URL, json=body(), headers=plain)).status_code == 201
    assert (await service.client.post(URL, json=body(), headers=plain)).status_code == 201
    assert await event_count(service) == count + 2


@pytest.mark.parametrize(
    "other",
    [
        body(phone="+14155550999"),
        body(business=BILINGUAL),
        body(channel="sms"),
        body(evidence={"ticket": 4712}),
        body(evidence=None),
    ],
)
async def test_the_same_idempotency_key_with_another_body_is_409(
    service: Service, other: dict[str, Any]
) -> None:
    headers = await token_for(service) | {"Idempotency-Key": "crm-4711"}
    assert (await service.client.post(URL, json=body(), headers=headers)).status_code == 201
    count = await event_count(service)
    response = await service.client.post(URL, json=other, headers=headers)
    assert response.status_code == 409 and response.json()["field"] == "Idempotency-Key"
    assert await event_count(service) == count


async def test_idempotency_keys_belong_to_their_token(service: Service) -> None:
    one = await token_for(service, "one") | {"Idempotency-Key": "k-1"}
    two = await token_for(service, "two") | {"Idempotency-Key": "k-1"}
    assert (await service.client.post(URL, json=body(), headers=one)).status_code == 201
    assert (await service.client.post(URL, json=body(), headers=two)).status_code == 201


@pytest.mark.parametrize(
    "authorization", [None, "Bearer", "Bearer ivr_not-a-token", "Basic dXNlcjpwYXNz", "ivr_x"]
)
async def test_no_or_a_bad_token_is_401_and_writes_nothing(
    service: Service, authorization: str | None
) -> None:
    before = await event_count(service)
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await service.client.post(URL, json=body(), headers=headers)
    assert response.status_code == 401 and "WWW-Authenticate" in response.headers
    assert await event_count(service) == before


async def test_a_revoked_token_is_401(service: Service) -> None:
    headers = await token_for(service, "old")
    await service.store.revoke_api_token("old", "test")
    assert (await service.client.post(URL, json=body(), headers=headers)).status_code == 401


async def test_another_business_or_an_unknown_one_is_the_same_404(service: Service) -> None:
    headers = await token_for(service, "acme-only", [ACME])
    before = await event_count(service)
    other = await service.client.post(URL, json=body(business=BILINGUAL), headers=headers)
    unknown = await service.client.post(URL, json=body(business="Nobody Ltd"), headers=headers)
    assert other.status_code == unknown.status_code == 404
    assert other.json()["field"] == unknown.json()["field"] == "business"
    assert await event_count(service) == before


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b"not json", None),
        (b"[1, 2]", None),
        (b'"a string"', None),
        (
            b'{"phone": "+14155550123", "business": "Acme Parcels", "channel": "whatsapp", "evidence": NaN}',
            None,
        ),
        (json.dumps(body(extra=1)).encode(), "extra"),
        (json.dumps({k: v for k, v in body().items() if k != "phone"}).encode(), "phone"),
        (json.dumps(body(phone=14155550123)).encode(), "phone"),
        (json.dumps(body(phone="")).encode(), "phone"),
        (json.dumps(body(phone="+1415555")).encode(), "phone"),
        (json.dumps(body(phone="call me")).encode(), "phone"),
        (json.dumps(body(phone="+266696687")).encode(), "phone"),  # a withheld caller's placeholder
        (json.dumps(body(business=["Acme"])).encode(), "business"),
        (json.dumps(body(channel="WhatsApp")).encode(), "channel"),
        (json.dumps(body(channel="fax")).encode(), "channel"),
        (json.dumps(body(evidence=[1, 2])).encode(), "evidence"),
        (json.dumps(body(evidence=12)).encode(), "evidence"),
        (json.dumps(body(evidence="x" * 5000)).encode(), "evidence"),
        (json.dumps(body(evidence={"a": "é" * 2100})).encode(), "evidence"),
        (b"\xff\xfe{}", None),
    ],
)
async def test_bad_bodies_are_422_naming_the_field_and_write_nothing(
    service: Service, payload: bytes, field: str | None
) -> None:
    headers = await token_for(service) | {"Content-Type": "application/json"}
    before = await event_count(service)
    response = await service.client.post(URL, content=payload, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert await event_count(service) == before


@pytest.mark.parametrize("key", ["", " k", "k ", "k\u00e9", "k" * 201, "k\ttab"])
async def test_a_bad_idempotency_key_is_422(service: Service, key: str) -> None:
    headers = await token_for(service)
    before = await event_count(service)
    raw_headers = [(b"authorization", headers["Authorization"].encode()), (b"idempotency-key", key.encode())]
    response = await service.client.post(URL, json=body(), headers=raw_headers)
    assert response.status_code == 422 and response.json()["field"] == "Idempotency-Key"
    assert await event_count(service) == before


async def test_a_typed_phone_is_normalised(service: Service) -> None:
    headers = await token_for(service)
    response = await service.client.post(URL, json=body(phone="+1 (415) 555-0123"), headers=headers)
    assert response.status_code == 201 and response.json()["phone"] == CALLER


@pytest.mark.parametrize("declared", [True, False])
async def test_an_oversize_body_is_413_and_writes_nothing(service: Service, declared: bool) -> None:
    headers = await token_for(service)
    before = await event_count(service)
    payload = json.dumps(body(evidence="x" * 20_000)).encode()
    if declared:
        response = await service.client.post(URL, content=payload, headers=headers)
    else:

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(0, len(payload), 1000):
                yield payload[i : i + 1000]

        response = await service.client.post(URL, content=chunks(), headers=headers)
    assert response.status_code == 413
    assert await event_count(service) == before


async def test_the_opt_out_webhook_and_standing_reflect_it(service: Service) -> None:
    headers = await token_for(service)
    await service.client.post(URL, json=body(), headers=headers)
    standing = await service.store.standing(CALLER, ACME)
    assert standing is not None and standing.action == "opt_out"
    notices = await service.store.opt_outs_after(ACME, 0)
    assert [n.phone for n in notices] == [CALLER]


async def test_a_reused_key_for_another_phone_is_409_even_when_that_phone_opted_out_since(
    service: Service,
) -> None:
    headers = await token_for(service)
    keyed = headers | {"Idempotency-Key": "crm-1"}
    assert (await service.client.post(URL, json=body(), headers=keyed)).status_code == 201
    other = "+14155550999"
    assert (await service.client.post(URL, json=body(phone=other), headers=headers)).status_code == 201
    count = await event_count(service)
    response = await service.client.post(URL, json=body(phone=other), headers=keyed)
    assert response.status_code == 409
    assert await event_count(service) == count
