"""Phone numbers typed by a person are normalised to E.164; what Twilio sends stays strict.

The `ivr` command runs for real as a subprocess, the /try API through the real app, and
`ivr serve` as a real process for its start-up warning.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ivr.exceptions import NotAPhoneNumber
from ivr.phone_input import MAX_TYPED_LENGTH, normalise_typed_phone
from ivr.twilio.call_flow import system_reply
from tests.conftest import ACME, ACME_NUMBER, CALLER, Service
from tests.live_server import free_port, ivr, wait_until_healthy

HOSTILE = ["x" * 10_000, "+1 415 555\x000123", "٤١٥ ٥٥٥ ٠١٢٣", "+1 415 FLOWERS", "+1 415 555 0123 ext 5"]


def env_for(db_url: str, **extra: str) -> dict[str, str]:
    """This process's environment without any IVR_ setting, then the database and `extra`."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    return kept | {"IVR_DATABASE_URL": db_url} | extra


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


@pytest.mark.parametrize(
    ("typed", "region", "e164"),
    [
        ("+1 555 000 2222", None, "+15550002222"),
        ("+1 (415) 555-0123", None, "+14155550123"),
        ("  +1.415.555.0123 ", None, "+14155550123"),
        ("+15550100100", None, "+15550100100"),  # fictional 555-01xx: possible, though not valid
        ("(415) 555-0123", "US", "+14155550123"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("+34 910 000 222", "US", "+34910000222"),  # a + wins over the region
    ],
)
def test_typed_forms_are_normalised_to_e164(typed: str, region: str | None, e164: str) -> None:
    assert normalise_typed_phone(typed, region) == e164


@pytest.mark.parametrize(
    ("typed", "region", "why"),
    [
        (
            "555 0123",
            None,
            "write it with its country code (E.164), e.g. +14155550123, or set IVR_DEFAULT_REGION",
        ),
        ("555 0123", "US", "wrong number of digits"),  # a local-only number: no area code
        ("+1 415 555 01234", None, "wrong number of digits"),
        ("+266696687", None, "wrong number of digits"),  # a withheld caller's placeholder
        ("+0 415 555 0123", None, "no country's code"),
        ("", None, "use the digits 0-9"),
        *((text, "US", "") for text in HOSTILE),
    ],
)
def test_what_is_not_a_phone_number_is_refused_with_a_reason(
    typed: str, region: str | None, why: str
) -> None:
    with pytest.raises(NotAPhoneNumber, match="is not a phone number") as refused:
        normalise_typed_phone(typed, region)
    message = str(refused.value)
    assert why in message and "\n" not in message and len(message) < MAX_TYPED_LENGTH + 200


@pytest.mark.parametrize(
    ("number", "extra", "listed"),
    [
        ("+1 555 000 2222", [], "+15550002222"),
        ("(415) 555-0199", ["--region", "us"], "+14155550199"),
    ],
)
def test_business_add_takes_a_typed_number_and_lists_it_in_e164(
    db_url: str, number: str, extra: list[str], listed: str
) -> None:
    env = env_for(db_url)
    added = ivr(env, "business", "add", "--name", "B", "--number", number, *extra, "--message-type", "x")
    assert added.returncode == 0, added.stderr
    assert ivr(env, "business", "list").stdout.split("\t")[:2] == ["B", listed]


@pytest.mark.parametrize("number", ["555 0123", *HOSTILE[:1], *HOSTILE[2:]])
def test_business_add_refuses_a_bad_typed_number_in_one_line_and_writes_nothing(
    db_url: str, number: str
) -> None:
    result = ivr(env_for(db_url), "business", "add", "--name", "B", "--number", number, "--message-type", "x")
    assert "ivr: error: --number" in one_line_error(result) and "is not a phone number" in result.stderr
    assert not Path(db_url.removeprefix("sqlite:///")).exists()


def test_a_bad_region_is_refused_in_one_line(db_url: str) -> None:
    result = ivr(env_for(db_url, IVR_DEFAULT_REGION="Mars"), "forget", "--phone", "+14155550123")
    assert "IVR_DEFAULT_REGION" in one_line_error(result)
    result = ivr(env_for(db_url), "forget", "--phone", "4155550123", "--region", "XX")
    assert "--region" in one_line_error(result)


def test_twilio_connect_refuses_a_bad_typed_number_before_anything_else(db_url: str) -> None:
    result = ivr(env_for(db_url), "twilio", "connect", "--number", "+1 415 FLOWERS")
    assert "ivr: error: --number '+1 415 FLOWERS' is not a phone number" in one_line_error(result)


async def test_forget_takes_a_national_number_with_the_default_region(service: Service) -> None:
    await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
    env = env_for(service.db_url, IVR_DEFAULT_REGION="US")
    erased = await asyncio.to_thread(ivr, env, "forget", "--phone", "(415) 555-0123")
    assert erased.returncode == 0 and "Erased the phone number from 1 decision(s)" in erased.stdout
    assert await service.store.standing(CALLER, ACME) is None


async def test_a_spaced_from_in_a_webhook_is_still_refused_as_withheld(service: Service) -> None:
    call = await service.twilio.call(ACME_NUMBER, "+1 415 555 0123", ["1", "1"])
    said = " ".join(
        (s.text or "").strip() for s in ET.fromstring(system_reply("withheld", "en-US")).iter("Say")
    )
    assert call.transcript == said and call.pressed == []
    assert await service.store.standing(CALLER, ACME) is None


async def test_the_try_phone_normalises_its_fields_and_refuses_hostile_ones(service: Service) -> None:
    typed = {"to": "+1 555 000 9999", "from": "+1 (555) 010-0123"}
    response = await service.client.post("/try/api/calls", json=typed)
    assert response.status_code == 404 and response.json()["error"] == "no business answers +15550009999"
    for caller in HOSTILE:
        response = await service.client.post("/try/api/calls", json={"to": "+15550100100", "from": caller})
        assert response.status_code == 400 and "your number" in response.json()["error"]
        assert "is not a phone number" in response.json()["error"]


@pytest.mark.parametrize(
    ("host", "public_url", "warned"),
    [("0.0.0.0", None, True), ("0.0.0.0", "https://ivr.example.com", False), ("127.0.0.1", None, False)],
)
def test_serve_warns_when_it_listens_beyond_loopback_without_ivr_public_url(
    tmp_path: Path, host: str, public_url: str | None, warned: bool
) -> None:
    env = env_for(
        f"sqlite:///{tmp_path / 'ivr.db'}", **({"IVR_PUBLIC_URL": public_url} if public_url else {})
    )
    port, log = free_port(), tmp_path / "serve.log"
    with log.open("ab") as out:
        command = [sys.executable, "-m", "ivr", "serve", "--host", host, "--port", str(port)]
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", process, log)
    finally:
        process.kill()
        process.wait(timeout=30)
    warning = (
        "IVR_PUBLIC_URL is not set: behind a proxy or tunnel Twilio's signatures will not validate (403)"
    )
    assert (warning in log.read_text()) is warned
