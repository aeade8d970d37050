"""`ivr call`: a simulated call from the terminal, no phone or Twilio account needed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_runner import run_ivr

NUMBER = "+15550001111"


def ivr(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`ivr ARGS` in this process (tests/cli_runner.py), without TWILIO_AUTH_TOKEN."""
    return run_ivr(*args, env={"IVR_DATABASE_URL": f"sqlite:///{db}"}, drop=("TWILIO_AUTH_TOKEN",))


def ivr_process(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m ivr ARGS` for real, for the test whose point is the process."""
    env = os.environ | {"IVR_DATABASE_URL": f"sqlite:///{db}"}
    env.pop("TWILIO_AUTH_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "ivr", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "ivr.db"
    created = ivr(
        path, "business", "add", "--name", "Acme", "--number", NUMBER, "--message-type", "delivery updates"
    )
    assert created.returncode == 0, created.stderr
    return path


@pytest.mark.parametrize(
    ("keys", "outcome"),
    [
        ("1", "Recorded opt_in for +15005550006 with Acme"),
        ("2", "Recorded declined for +15005550006 with Acme"),
        ("---", "No consent record was written for this call."),
        ("*,7,1", "Recorded opt_in"),
    ],
)
def test_ivr_call_with_keys_runs_the_whole_call_and_shows_the_record(
    db: Path, keys: str, outcome: str
) -> None:
    result = ivr(db, "call", "--to", NUMBER, "--keys", keys, "--record")
    assert result.returncode == 0, result.stderr
    assert "[en-US] Hello, thank you for calling Acme." in result.stdout
    assert "ended (hangup)" in result.stdout and outcome in result.stdout
    assert result.stderr == ""


def test_ivr_call_record_writes_records_that_are_verifiable(db: Path) -> None:
    """The call family's one real `python -m ivr call` (the in-process call through the real entry point)."""
    called = ivr_process(db, "call", "--to", NUMBER, "--from", "+34600111222", "--keys", "1", "--record")
    assert called.returncode == 0
    exported = ivr(db, "export", "--format", "jsonl")
    assert '"phone": "+34600111222"' in exported.stdout and '"action": "opt_in"' in exported.stdout
    assert ivr(db, "verify").returncode == 0


def test_ivr_call_to_an_unknown_number_hears_the_polite_message(db: Path) -> None:
    result = ivr(db, "call", "--to", "+15550009999", "--keys", "1")
    assert result.returncode == 0
    assert "not set up to take calls" in result.stdout and "No consent record" in result.stdout


def test_ivr_call_rejects_keys_that_are_not_phone_keys(db: Path) -> None:
    result = ivr(db, "call", "--to", NUMBER, "--keys", "1x")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "'--keys'" in result.stderr
