"""`ivr message` and `ivr business add/update --whatsapp-number`: trying STOP from a terminal."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.cli_runner import ivr_with_env as ivr  # in-process; tests/live_server.py's ivr as was
from tests.live_server import server, wait_until_healthy
from tests.test_cli import one_line_error

NUMBER = "+15550001111"
SENDER = "+15550002222"
OTHER = "+15550003333"


def env_for(db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "TWILIO_"))}
    return env | {"IVR_DATABASE_URL": f"sqlite:///{db}"}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = env_for(tmp_path / "ivr.db")
    created = ivr(
        env,
        "business", "add", "--name", "Acme", "--number", NUMBER, "--message-type", "delivery updates",
        "--whatsapp-number", SENDER,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert f"WhatsApp senders {SENDER}" in created.stdout
    return env


def exported(env: dict[str, str]) -> list[dict[str, object]]:
    result = ivr(env, "export", "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_ivr_message_stop_records_a_simulated_whatsapp_opt_out_and_prints_the_reply(
    env: dict[str, str],
) -> None:
    result = ivr(env, "message", "--to", SENDER, "--from", "+1 415 555 0123", "--body", "STOP", "--whatsapp")
    assert result.returncode == 0, result.stderr
    assert "Reply: You will no longer receive WhatsApp messages from Acme." in result.stdout
    rows = exported(env)
    assert [(r["action"], r["channel"], r["phone"], r["simulated"]) for r in rows] == [
        ("opt_out", "whatsapp", "+14155550123", 1)
    ]
    assert ivr(env, "verify").returncode == 0


def test_ivr_message_help_by_sms_writes_nothing(env: dict[str, str]) -> None:
    result = ivr(env, "message", "--to", NUMBER, "--body", "ayuda")
    assert result.returncode == 0, result.stderr
    assert (
        "Reply: Acme le envía por WhatsApp delivery updates. Para dejar de recibirlos, responda BAJA."
        in result.stdout
    )
    assert exported(env) == []


def test_ivr_message_other_text_says_there_was_no_reply(env: dict[str, str]) -> None:
    result = ivr(env, "message", "--to", "whatsapp:" + SENDER, "--body", "hello")
    assert result.returncode == 0, result.stderr
    assert "No reply" in result.stdout and exported(env) == []


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--to", "not a number", "--body", "STOP"], "--to"),
        (["--to", NUMBER, "--from", "+266696687", "--body", "STOP"], "--from"),
        (["--to", NUMBER, "--body", "x" * 1601], "--body"),
        (["--to", NUMBER, "--body", "STOP", "--url", "http://127.0.0.1:9"], "nothing answers"),
    ],
)
def test_ivr_message_refuses_bad_input_in_one_line(env: dict[str, str], args: list[str], says: str) -> None:
    result = ivr(env, "message", *args)
    line = one_line_error(result, 1 if "--url" in args else 2)
    assert says in line
    assert exported(env) == []


def test_ivr_business_update_sets_and_clears_whatsapp_senders_chained(env: dict[str, str]) -> None:
    updated = ivr(
        env, "business", "update", "--name", "Acme", "--whatsapp-number", OTHER, "--whatsapp-number", SENDER
    )
    assert updated.returncode == 0, updated.stderr
    assert f"WhatsApp senders {OTHER}, {SENDER}" in updated.stdout or f"{SENDER}, {OTHER}" in updated.stdout
    reply = ivr(env, "message", "--to", OTHER, "--body", "STOP", "--whatsapp")
    assert "Reply: You will no longer receive" in reply.stdout
    cleared = ivr(env, "business", "update", "--name", "Acme", "--clear-whatsapp-numbers")
    assert cleared.returncode == 0 and "WhatsApp senders none" in cleared.stdout
    silent = ivr(env, "message", "--to", OTHER, "--body", "STOP", "--whatsapp")
    assert "No reply" in silent.stdout
    assert len(exported(env)) == 1
    assert ivr(env, "verify").returncode == 0


def test_a_number_of_another_business_is_refused_for_whatsapp(env: dict[str, str]) -> None:
    other = ivr(env, "business", "add", "--name", "Beta", "--number", OTHER, "--message-type", "offers")
    assert other.returncode == 0, other.stderr
    for args in (
        ["business", "update", "--name", "Beta", "--whatsapp-number", SENDER],  # Acme's WhatsApp sender
        ["business", "update", "--name", "Beta", "--whatsapp-number", NUMBER],  # Acme's call number
        ["business", "add", "--name", "Gamma", "--number", "+15550004444", "--message-type", "x",
         "--whatsapp-number", NUMBER],
        ["business", "add", "--name", "Delta", "--number", SENDER, "--message-type", "x"],
    ):  # fmt: skip
        line = one_line_error(ivr(env, *args))
        assert "Acme" in line, line
    assert "--clear-whatsapp-numbers" in ivr(env, "business", "update", "--name", "Beta").stderr
    assert "Nobody" in one_line_error(
        ivr(env, "business", "update", "--name", "Nobody", "--whatsapp-number", "+15550005555")
    )


def test_ivr_message_against_a_real_ivr_serve(env: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    with server(env, log) as (process, base):
        wait_until_healthy(base, process, log)
        result = ivr(env, "message", "--to", SENDER, "--body", "Baja.", "--whatsapp", "--url", base)
        assert result.returncode == 0, result.stderr + log.read_text()[-2000:]
        assert "Reply: Ya no recibirá mensajes de WhatsApp de Acme." in result.stdout
        again = ivr(env, "message", "--to", SENDER, "--body", "HELP", "--whatsapp", "--url", base)
        # The sender's last decision was in Spanish: HELP is answered in Spanish.
        assert (
            "Reply: Acme le envía por WhatsApp delivery updates. Para dejar de recibirlos, responda BAJA."
            in (again.stdout)
        )
        forged = ivr(
            env | {"TWILIO_AUTH_TOKEN": "not-the-servers-token"},
            "message", "--to", SENDER, "--body", "STOP", "--whatsapp", "--url", base,
        )  # fmt: skip
        assert "refused the signature" in one_line_error(forged, 1)
    rows = exported(env)
    assert [(r["action"], r["channel"], r["locale"]) for r in rows] == [("opt_out", "whatsapp", "es")]
