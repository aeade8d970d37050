"""tests/cli_runner.py runs `ivr` in-process as a process would, and leaves nothing behind."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from pathlib import Path

import pytest

import ivr.cli.main
from tests import cli_runner
from tests.cli_runner import run_ivr

ADD = ["business", "add", "--name", "Acme", "--number", "+15550001111", "--message-type", "news"]


def test_the_environment_is_the_call_s_alone_and_put_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IVR_DATABASE_URL", "mysql://not-this-one")
    monkeypatch.setenv("IVR_RUNNER_PROBE", "kept")
    before = dict(os.environ)
    # IVR_* dropped: the default database, ivr.db in the working directory given.
    made = run_ivr("migrate", cwd=tmp_path)
    assert (made.returncode, made.stdout, made.stderr) == (0, "ok: schema up to date\n", "")
    assert (tmp_path / "ivr.db").exists()
    assert dict(os.environ) == before and Path.cwd() != tmp_path
    bad = run_ivr("migrate", env={"IVR_DATABASE_URL": "mysql://x"})
    assert bad.returncode == 2 and bad.stdout == "" and len(bad.stderr.splitlines()) == 1


def test_output_is_bytes_read_as_a_pipe_reads_them_and_exit_codes_are_the_process_s(tmp_path: Path) -> None:
    env = {"IVR_DATABASE_URL": f"sqlite:///{tmp_path / 'ivr.db'}"}
    assert run_ivr(*ADD, env=env).returncode == 0
    call = run_ivr("call", "--to", "+15550001111", "--keys", "1", "--record", env=env)
    assert call.returncode == 0, call.stderr
    exported = run_ivr("export", env=env)  # written to sys.stdout.buffer, CSV lines end in CRLF
    assert exported.stdout_bytes.count(b"\r\n") == 2 and "\r" not in exported.stdout
    assert exported.stdout == exported.stdout_bytes.decode().replace("\r\n", "\n")
    usage = run_ivr("export", "--format", "xml", env=env)
    assert usage.returncode == 2 and usage.stdout == "" and "--format" in usage.stderr
    # `ivr call` quiets ivr.runtime, and main quiets consent_store: both put back.
    assert logging.getLogger("ivr.runtime").level == logging.NOTSET
    assert logging.getLogger("consent_store").level == logging.NOTSET


def test_standard_input_is_the_text_given(tmp_path: Path) -> None:
    env = {"IVR_DATABASE_URL": f"sqlite:///{tmp_path / 'ivr.db'}"}
    made = run_ivr("user", "add", "mia", "--role", "auditor", env=env, stdin="correct horse battery staple\n")
    assert made.returncode == 0 and "Created auditor 'mia'" in made.stdout, made.stderr
    short = run_ivr("user", "add", "leo", "--role", "auditor", env=env, stdin="short\n")
    assert short.returncode == 2 and "at least 12 characters" in short.stderr


def test_an_uncaught_exception_gives_its_traceback_and_1(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(argv: list[str]) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(ivr.cli.main, "main", broken)
    result = run_ivr("verify")
    assert result.returncode == 1 and "Traceback" in result.stderr and "RuntimeError: boom" in result.stderr


def test_a_thread_left_running_fails_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def leaky(argv: list[str]) -> None:
        threading.Thread(target=release.wait, name="leaked-by-test").start()

    monkeypatch.setattr(ivr.cli.main, "main", leaky)
    monkeypatch.setattr(cli_runner, "_LEAK_GRACE_SECONDS", 0.1)
    try:
        with pytest.raises(AssertionError, match="leaked-by-test"):
            run_ivr("verify")
    finally:
        release.set()


def test_a_signal_handler_left_changed_fails_the_call_and_is_put_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = signal.getsignal(signal.SIGTERM)

    def grabs_sigterm(argv: list[str]) -> None:
        signal.signal(signal.SIGTERM, lambda *_: None)

    monkeypatch.setattr(ivr.cli.main, "main", grabs_sigterm)
    with pytest.raises(AssertionError, match="SIGTERM"):
        run_ivr("verify")
    assert signal.getsignal(signal.SIGTERM) == before


async def test_called_from_a_running_loop_it_runs_beside_it(tmp_path: Path) -> None:
    result = run_ivr("migrate", env={"IVR_DATABASE_URL": f"sqlite:///{tmp_path / 'ivr.db'}"})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("beside_a_loop", [False, True], ids=["sync", "to_thread"])
def test_the_command_s_warnings_reach_its_standard_error_and_others_do_not(
    monkeypatch: pytest.MonkeyPatch, beside_a_loop: bool
) -> None:
    elsewhere = logging.getLogger("tests.elsewhere")

    def warns(argv: list[str]) -> None:
        logging.getLogger("ivr.probe").warning("the command's own warning")
        if beside_a_loop:  # another thread (a test's server) logging meanwhile
            other = threading.Thread(target=elsewhere.warning, args=("the server's warning",))
            other.start()
            other.join()

    monkeypatch.setattr(ivr.cli.main, "main", warns)
    if beside_a_loop:

        async def beside() -> cli_runner.Result:
            return await asyncio.to_thread(run_ivr, "verify")

        result = asyncio.run(beside())
    else:
        result = run_ivr("verify")
    assert result.stderr == "the command's own warning\n"
