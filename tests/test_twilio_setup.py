"""Going live: `ivr twilio connect|check` against Twilio's REST API (ivr.twilio.rest_emulator over
real HTTP, driven by the twilio library) and a real `ivr serve` as the public URL; and the
operator's mistakes (a port in use, a server that is not there) in one line."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ivr.twilio.rest_emulator import TwilioRestEmulator
from tests.cli_runner import ivr_with_env as ivr  # in-process; tests/live_server.py's ivr as was
from tests.live_server import free_port, server, wait_until_healthy

ACCOUNT = "AC" + "d4" * 16
TOKEN = "live-auth-token-0123456789abcdef"
NUMBER = "+15550001111"
ELSEWHERE = "https://old-ivr.example.net/voice"


@dataclass
class Live:
    api: TwilioRestEmulator
    env: dict[str, str]  # reaches the REST emulator, the live server and its database
    public_url: str


def base_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "TWILIO_"))}
    return env | {
        "IVR_DATABASE_URL": f"sqlite:///{tmp_path / 'ivr.db'}",
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": TOKEN,
    }


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    api = TwilioRestEmulator()
    api.add_account(ACCOUNT, TOKEN)
    api.add_number(ACCOUNT, NUMBER, voice_url=ELSEWHERE, voice_method="GET")
    api.add_number(ACCOUNT, "+155500011119")  # a partial match of NUMBER: must never be touched
    env = base_env(tmp_path)
    added = ivr(env, "business", "add", "--name", "Acme", "--number", NUMBER, "--message-type", "offers")
    assert added.returncode == 0, added.stderr
    log = tmp_path / "serve.log"
    with api.serve() as api_url, server(env, log) as (process, public_url):
        wait_until_healthy(public_url, process, log)
        yield Live(api, env | {"IVR_TWILIO_API_URL": api_url, "IVR_PUBLIC_URL": public_url}, public_url)


def events(env: dict[str, str]) -> str:
    verified = ivr(env, "verify", "-q")
    assert verified.returncode == 0, verified.stderr
    return verified.stdout


def test_check_names_a_number_pointing_elsewhere_and_passes_once_connect_set_it(live: Live) -> None:
    before = events(live.env)
    checked = ivr(live.env, "twilio", "check", "--allow-http")
    assert checked.returncode == 1
    assert f"FAIL  {NUMBER} VoiceUrl is {ELSEWHERE}, not {live.public_url}/twilio/voice" in checked.stdout
    assert f"{NUMBER} VoiceMethod is GET, not POST" in checked.stdout
    assert f"ok    {live.public_url}/healthz answers 200" in checked.stdout
    assert "refuses a forged one (403)" in checked.stdout
    assert checked.stderr.count("\n") == 1 and f"{NUMBER} VoiceUrl" in checked.stderr

    connected = ivr(live.env, "twilio", "connect", "--number", NUMBER, "--allow-http")
    assert connected.returncode == 0, connected.stderr
    assert connected.stdout.splitlines() == [
        f"{NUMBER} VoiceUrl: {ELSEWHERE} → {live.public_url}/twilio/voice",
        f"{NUMBER} VoiceMethod: GET → POST",
        f"{NUMBER} StatusCallback: (none) → {live.public_url}/twilio/status",
    ]
    stored = live.api.number(NUMBER)
    assert (stored["voice_url"], stored["voice_method"]) == (f"{live.public_url}/twilio/voice", "POST")
    assert live.api.number("+155500011119")["voice_url"] == ""

    checked = ivr(live.env, "twilio", "check", "--allow-http")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "FAIL" not in checked.stdout and checked.stderr == ""
    assert f"ok    credentials: account {ACCOUNT}" in checked.stdout
    assert events(live.env) == before  # the signed test request wrote nothing
    again = ivr(live.env, "twilio", "connect", "--all", "--allow-http")
    assert (
        again.returncode == 0
        and again.stdout == f"{NUMBER}: already points at {live.public_url} (unchanged)\n"
    )


def test_connect_refuses_a_public_url_that_is_not_https_without_allow_http(live: Live) -> None:
    refused = ivr(live.env, "twilio", "connect", "--all")
    assert refused.returncode == 2 and refused.stdout == ""
    assert (
        refused.stderr.count("\n") == 1
        and "is not HTTPS" in refused.stderr
        and "--allow-http" in refused.stderr
    )
    unset = ivr(live.env | {"IVR_PUBLIC_URL": ""}, "twilio", "connect", "--all")
    assert unset.returncode == 2 and "IVR_PUBLIC_URL is not set" in unset.stderr
    assert not [r for r in live.api.requests if r[0] == "POST"]


def test_connect_refuses_numbers_not_in_the_account_and_changes_nothing(live: Live) -> None:
    missing = "+15550002222"
    added = ivr(
        live.env, "business", "add", "--name", "Other", "--number", missing, "--message-type", "offers"
    )
    assert added.returncode == 0, added.stderr
    refused = ivr(live.env, "twilio", "connect", "--all", "--allow-http")
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr == f"ivr: error: not in account {ACCOUNT}: {missing} (nothing was changed)\n"
    stranger = ivr(live.env, "twilio", "connect", "--number", "+15559990000", "--allow-http")
    assert stranger.returncode == 2 and "is no business's number here" in stranger.stderr
    assert not [r for r in live.api.requests if r[0] == "POST"]
    assert live.api.number(NUMBER)["voice_url"] == ELSEWHERE


@pytest.mark.parametrize("command", ["connect", "check"])
def test_wrong_credentials_are_one_line_and_exit_1(live: Live, command: str) -> None:
    wrong = "not-the-token-0123456789abcdefgh"
    args = ["--all", "--allow-http"] if command == "connect" else ["--allow-http"]
    result = ivr(live.env | {"TWILIO_AUTH_TOKEN": wrong}, "twilio", command, *args)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and wrong not in result.stdout + result.stderr
    line = result.stderr if command == "connect" else result.stdout
    assert "Twilio refused the credentials (HTTP 401, code 20003)" in line
    if command == "check":
        assert "check(s) failed: credentials" in result.stderr


def test_missing_credentials_are_one_line(live: Live) -> None:
    result = ivr(live.env | {"TWILIO_AUTH_TOKEN": ""}, "twilio", "connect", "--all", "--allow-http")
    assert result.returncode == 2
    assert result.stderr.startswith(
        "ivr: error: no Twilio credentials: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"
    )


def test_connect_with_an_api_key_instead_of_the_auth_token(live: Live) -> None:
    key = live.api.add_api_key(ACCOUNT)
    env = live.env | {"TWILIO_AUTH_TOKEN": "", "TWILIO_API_KEY": key.sid, "TWILIO_API_SECRET": key.secret}
    connected = ivr(env, "twilio", "connect", "--all", "--allow-http")
    assert connected.returncode == 0, connected.stderr
    assert live.api.number(NUMBER)["status_callback"] == f"{live.public_url}/twilio/status"


def test_a_second_serve_on_a_used_port_says_so_in_one_line(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    log = tmp_path / "serve.log"
    with server(env, log) as (process, base):
        wait_until_healthy(base, process, log)
        port = base.rsplit(":", 1)[1]
        second = ivr(env, "serve", "--port", port)
        assert second.returncode == 1
        assert second.stderr == (
            f"ivr: error: port {port} on 127.0.0.1 is already in use (another `ivr serve`?): "
            "stop that process, or choose another port with --port\n"
        )
        assert process.poll() is None


def test_ivr_call_to_a_server_that_does_not_answer_says_so_in_one_line(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    assert (
        ivr(env, "business", "add", "--name", "Acme", "--number", NUMBER, "--message-type", "x").returncode
        == 0
    )
    url = f"http://127.0.0.1:{free_port()}"
    result = ivr(env, "call", "--to", NUMBER, "--keys", "1", "--url", url)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(
        f"ivr: error: nothing answers at {url} (ConnectError): is `ivr serve` running"
    )
    assert "Traceback" not in result.stderr and result.stdout == ""
