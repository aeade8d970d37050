"""GET /api/consent: senders ask "may I message this number?" with a bearer token."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from consent_store import ExportFilter
from ivr.api.consent import new_token, token_sha256
from tests.cli_runner import run_ivr
from tests.conftest import ACME, ACME_NUMBER, CALLER, Service


@pytest.fixture
async def token(service: Service) -> str:
    secret = new_token()
    await service.store.add_api_token("crm", token_sha256(secret), author="test")
    return secret


async def ask(service: Service, token: str | None, phone: str = CALLER, business: str = ACME):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await service.client.get(
        "/api/consent", params={"phone": phone, "business": business}, headers=headers
    )


@pytest.mark.parametrize("header", [None, "Basic abc", "Bearer ", "Bearer ivr_not-a-real-token"])
async def test_missing_or_wrong_tokens_get_401(service: Service, token: str, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = await service.client.get(
        "/api/consent", params={"phone": CALLER, "business": ACME}, headers=headers
    )
    assert response.status_code == 401 and "Bearer" in response.headers["www-authenticate"]


@pytest.mark.parametrize("phone", ["", "4155550123", "+0123", "+1 415 555 0123", "anonymous"])
async def test_a_bad_phone_is_a_400_that_says_why(service: Service, token: str, phone: str) -> None:
    response = await ask(service, token, phone=phone)
    assert response.status_code == 400 and "E.164" in response.json()["error"]


async def test_an_unknown_business_is_a_404(service: Service, token: str) -> None:
    assert (await ask(service, token, business="Nope")).status_code == 404


async def test_answers_follow_opt_in_opt_out_and_opt_in_again(service: Service, token: str) -> None:
    never = (await ask(service, token)).json()
    assert never["opted_in"] is False and never["last_action"] is None and never["record_hash"] is None

    await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
    first = (await ask(service, token)).json()
    [row] = [r async for r in service.store.export_decisions(ExportFilter())]
    assert first["opted_in"] is True and first["since"] == row.recorded_at
    assert first["message_types"] == ["delivery updates", "appointment reminders"]
    assert (first["last_action"], first["record_hash"]) == ("opt_in", row.record_hash)

    await service.twilio.call(ACME_NUMBER, CALLER, ["9"])
    out = (await ask(service, token)).json()
    assert out["opted_in"] is False and out["since"] is None and out["last_action"] == "opt_out"

    await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
    again = (await ask(service, token)).json()
    assert again["opted_in"] is True and again["since"] > first["since"]
    assert (await ask(service, token, phone="+14155550999")).json()["opted_in"] is False


async def test_tokens_from_the_cli_work_until_revoked(service: Service) -> None:
    def ivr(*args: str) -> subprocess.CompletedProcess[str]:
        """`ivr ARGS` in this process (tests/cli_runner.py) on the service's database."""
        return run_ivr(*args, env={"IVR_DATABASE_URL": service.db_url})

    created = await asyncio.to_thread(ivr, "token", "add", "campaigns")
    secret = created.stdout.strip()
    assert created.returncode == 0 and secret.startswith("ivr_") and "shown only now" in created.stderr
    assert (await ask(service, secret)).status_code == 200
    assert (await asyncio.to_thread(ivr, "token", "add", "campaigns")).returncode == 2
    assert (await asyncio.to_thread(ivr, "token", "revoke", "campaigns")).returncode == 0
    assert (await ask(service, secret)).status_code == 401
    assert (await asyncio.to_thread(ivr, "token", "revoke", "campaigns")).returncode == 2
    assert (await service.store.verify()).intact
