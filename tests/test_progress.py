"""Long CLI work shows progress with rate and ETA on a terminal, and nothing when piped or --quiet."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_runner import run_ivr


def run_on_terminal(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run `ivr` with its standard error on a pseudo-terminal; return exit code and what it showed.

    A real process: what is shown depends on `isatty()` of a real terminal."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "ivr", *args], env=env, stdout=subprocess.DEVNULL, stderr=follower
    )
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    return process.wait(timeout=60), shown.decode(errors="replace")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "TWILIO_"))}
    env["IVR_DATABASE_URL"] = f"sqlite:///{tmp_path / 'ivr.db'}"
    for i in range(3):
        added = run_ivr(
            "business", "add", "--name", f"B{i}", "--number", f"+1555000{i:04d}", "--message-type", "offers",
            env=env, drop=("IVR_", "TWILIO_"),
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
    for caller, keys in (("+15550100001", "1"), ("+15550100002", "2")):
        called = run_ivr(
            "call", "--to", "+15550000000", "--from", caller, "--keys", keys, "--record",
            env=env, drop=("IVR_", "TWILIO_"),
        )  # fmt: skip
        assert called.returncode == 0, called.stderr
    return env


def test_verify_on_a_terminal_shows_progress_with_rate_and_eta(env: dict[str, str]) -> None:
    code, shown = run_on_terminal(env, "verify")
    assert code == 0
    assert "verify: [########################] 100% 9/9 records" in shown and "/s ETA" in shown


def test_export_to_a_file_on_a_terminal_shows_progress(env: dict[str, str], tmp_path: Path) -> None:
    code, shown = run_on_terminal(env, "export", "-o", str(tmp_path / "out.csv"))
    assert code == 0
    assert "export: [########################] 100% 2/2 rows" in shown
    assert "Exported 2 decisions" in shown


@pytest.mark.parametrize("args", [("verify", "--quiet"), ("export", "-q", "-o", "out.csv")])
def test_quiet_shows_nothing_on_a_terminal(
    env: dict[str, str], tmp_path: Path, args: tuple[str, ...]
) -> None:
    args = tuple(str(tmp_path / a) if a == "out.csv" else a for a in args)
    code, shown = run_on_terminal(env, *args)
    assert code == 0 and shown == ""


def test_piped_verify_prints_no_progress(env: dict[str, str]) -> None:
    # In-process (tests/cli_runner.py): its standard error is a pipe-like buffer, no terminal.
    result = run_ivr("verify", env=env, drop=("IVR_", "TWILIO_"))
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("ok: 9 records, chain intact")
