"""Commands that only read never create a database, and say which one they read.

Run as the `ivr` command (in-process, tests/cli_runner.py) from a temporary folder: in the wrong
folder `ivr verify` used to create an empty ivr.db and report "ok: 0 records".
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.cli_runner import run_ivr
from tests.test_progress import run_on_terminal

READ_ONLY = [
    ["verify"],
    ["verify", "--reanchor"],
    ["export"],
    ["export", "--format", "jsonl", "-o", "out.jsonl"],
    ["stats", "--business", "Acme Parcels"],
    ["business", "list"],
    ["call", "--to", "+15550001111", "--keys", "1"],
]


def ivr(folder: Path, *args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    """`ivr ARGS` in this process (tests/cli_runner.py), run from `folder`, without IVR_*/TWILIO_*."""
    env = {"IVR_DATABASE_URL": url} if url is not None else {}
    return run_ivr(*args, env=env, drop=("IVR_", "TWILIO_"), cwd=folder)


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
def test_read_only_command_in_a_folder_without_database_fails_naming_it_and_creates_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    result = ivr(tmp_path, *command)
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"ivr: error: There is no database at {tmp_path.resolve() / 'ivr.db'}: ")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_file_named_by_the_url_is_named_by_its_absolute_path(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    result = ivr(tmp_path, "verify", url="sqlite:///elsewhere/consent.db")
    assert result.returncode == 2
    assert f"There is no database at {tmp_path.resolve() / 'elsewhere' / 'consent.db'}:" in result.stderr
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_commands_that_write_still_create_the_database(tmp_path: Path) -> None:
    assert ivr(tmp_path, "migrate").returncode == 0
    result = ivr(tmp_path, "verify")
    assert result.returncode == 0 and result.stdout.startswith("ok: 0 records"), result.stderr
    assert ivr(tmp_path, "business", "list").returncode == 0


@pytest.mark.parametrize("command", [["verify"], ["export", "-o", "out.csv"]], ids=" ".join)
def test_verify_and_export_on_a_terminal_say_which_database_they_read(
    tmp_path: Path, command: list[str]
) -> None:
    db = tmp_path / "ivr.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "TWILIO_"))}
    env["IVR_DATABASE_URL"] = f"sqlite:///{db}"
    assert ivr(tmp_path, "migrate", url=env["IVR_DATABASE_URL"]).returncode == 0
    args = [str(tmp_path / a) if a == "out.csv" else a for a in command]
    code, shown = run_on_terminal(env, *args)
    assert code == 0, shown
    assert f"ivr: {'verifying' if command[0] == 'verify' else 'exporting from'} {db.resolve()}" in shown
    code, shown = run_on_terminal(env, *args, "-q")
    assert code == 0 and str(db) not in shown
