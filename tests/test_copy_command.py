"""`ivr copy` moves a whole log, hashes included, into an empty database; `ivr migrate` is idempotent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.cli_runner import run_ivr


def ivr(db: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    """`ivr ARGS` in this process (tests/cli_runner.py), without IVR_*/TWILIO_* but the database."""
    env = {"IVR_DATABASE_URL": f"sqlite:///{db}"} if db is not None else {}
    return run_ivr(*args, env=env, drop=("IVR_", "TWILIO_"))


def ivr_process(db: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m ivr ARGS` for real, for the test whose point is the process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "TWILIO_"))}
    if db is not None:
        env["IVR_DATABASE_URL"] = f"sqlite:///{db}"
    return subprocess.run(
        [sys.executable, "-m", "ivr", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_copy_reproduces_the_log_and_refuses_a_non_empty_target(tmp_path: Path) -> None:
    source, target = tmp_path / "a.db", tmp_path / "b.db"
    add = "business add --name Acme --number +15550001111 --message-type offers".split()
    assert ivr(source, *add).returncode == 0
    for caller, keys in (("+14155550001", "1"), ("+14155550002", "2")):
        call = ["call", "--to", "+15550001111", "--from", caller, "--keys", keys, "--record"]
        assert ivr(source, *call).returncode == 0
    copied = ivr(None, "copy", "--from", f"sqlite:///{source}", "--to", f"sqlite:///{target}")
    assert copied.returncode == 0, copied.stderr
    head = ivr(source, "verify").stdout.split("head ")[1]
    assert copied.stdout.startswith("ok: copied 7 records") and copied.stdout.endswith(f"head {head}")
    assert ivr(target, "verify").stdout == ivr(source, "verify").stdout
    assert ivr(target, "export").stdout == ivr(source, "export").stdout
    again = ivr(None, "copy", "--from", f"sqlite:///{source}", "--to", f"sqlite:///{target}")
    assert again.returncode == 2 and len(again.stderr.splitlines()) == 1


def test_migrate_creates_and_then_leaves_the_schema(tmp_path: Path) -> None:
    """A real process: `python -m ivr migrate`, the schema made by a fresh interpreter, twice."""
    for _ in range(2):
        result = ivr_process(tmp_path / "ivr.db", "migrate")
        assert result.returncode == 0 and result.stdout.strip() == "ok: schema up to date"
