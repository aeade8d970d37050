"""A real `ivr serve` killed with SIGKILL under load loses no confirmed decision and leaves a sound chain."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ivr.exceptions import EmulatorError
from ivr.twilio.emulator import Spoken, TwilioEmulator, new_sid
from tests.cli_runner import run_ivr
from tests.conftest import ACME, ACME_NUMBER, AUTH_TOKEN
from tests.live_server import server

pytestmark = pytest.mark.slow

CALLERS = 40
LOAD_SECONDS = 1.5
CONFIRMED = "Your choice has been recorded"


def ivr(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """A real `python -m ivr` process: what a fresh process finds after the servers (crash, recovery)."""
    command = [sys.executable, "-m", "ivr", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "TWILIO_"))}
    env |= {"IVR_DATABASE_URL": f"sqlite:///{tmp_path / 'ivr.db'}", "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
    added = run_ivr(  # set-up in-process (tests/cli_runner.py); servers and the checks after: processes
        "business", "add", "--name", ACME, "--number", ACME_NUMBER, "--message-type", "updates",
        env=env, drop=("IVR_", "TWILIO_"),
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    return env


async def wait_healthy(
    client: httpx.AsyncClient, base: str, process: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, f"server exited with {process.returncode}:\n{log.read_text()[-2000:]}"
        with contextlib.suppress(httpx.TransportError):
            if (await client.get(f"{base}/healthz")).status_code == 200:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"server never became healthy:\n{log.read_text()[-2000:]}")


async def place_call(client: httpx.AsyncClient, base: str, phone: str, confirmed: list[str]) -> str:
    """One caller pressing 1; its CallSid joins `confirmed` the moment the confirmation is heard."""
    twilio, call_sid = TwilioEmulator(client, base, AUTH_TOKEN), new_sid("CA")

    def heard(spoken: Spoken) -> None:
        if CONFIRMED in spoken.text:
            confirmed.append(call_sid)

    twilio.on_say = heard
    await twilio.call(ACME_NUMBER, phone, ["1"], call_sid=call_sid)
    return call_sid


async def caller(client: httpx.AsyncClient, base: str, phones: Iterator[int], confirmed: list[str]) -> int:
    """Call again and again until the server dies under it; return how many calls completed."""
    completed = 0
    while True:
        try:
            await place_call(client, base, f"+1415{next(phones):07d}", confirmed)
        except (httpx.HTTPError, EmulatorError):
            return completed
        completed += 1


def verify_and_export(env: dict[str, str]) -> tuple[int, list[dict[str, object]]]:
    verified = ivr(env, "verify")
    assert (verified.returncode, verified.stderr) == (0, ""), verified.stderr
    assert " records, chain intact, head " in verified.stdout
    exported = ivr(env, "export", "--format", "jsonl")
    assert exported.returncode == 0, exported.stderr
    return int(verified.stdout.split()[1]), [json.loads(line) for line in exported.stdout.splitlines()]


async def test_sigkill_under_load_keeps_every_confirmed_decision_and_the_chain(
    env: dict[str, str], tmp_path: Path
) -> None:
    log, phones = tmp_path / "serve.log", itertools.count()
    confirmed: list[str] = []
    limits = httpx.Limits(max_connections=2 * CALLERS)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:
        with server(env, log) as (process, base):
            await wait_healthy(client, base, process, log)
            callers = [asyncio.create_task(caller(client, base, phones, confirmed)) for _ in range(CALLERS)]
            try:
                await asyncio.sleep(LOAD_SECONDS)
                # On a busy machine a call can take longer than LOAD_SECONDS: kill only once some
                # caller confirmed a second call (so its first one completed), or after a minute.
                for _ in range(600):
                    if len(confirmed) > CALLERS:
                        break
                    await asyncio.sleep(0.1)
                assert not any(task.done() for task in callers), log.read_text()[-2000:]
                process.kill()  # SIGKILL: no shutdown, requests in flight
                process.wait(timeout=30)
                completed = await asyncio.wait_for(asyncio.gather(*callers), timeout=60)
            finally:
                for task in callers:
                    task.cancel()
                await asyncio.gather(*callers, return_exceptions=True)
    assert process.returncode == -9
    assert sum(completed) > 0 and len(confirmed) >= sum(completed), (completed, len(confirmed))

    records, rows = verify_and_export(env)
    exported = Counter(str(row["call_sid"]) for row in rows)
    assert [sid for sid, n in exported.items() if n > 1] == []
    assert set(confirmed) <= set(exported), set(confirmed) - set(exported)
    assert len(confirmed) == len(set(confirmed)) and all(row["action"] == "opt_in" for row in rows)

    async with httpx.AsyncClient(timeout=10) as client:
        with server(env, log) as (process, base):
            await wait_healthy(client, base, process, log)
            after: list[str] = []
            call_sid = await asyncio.wait_for(place_call(client, base, "+14159999999", after), timeout=30)
            assert after == [call_sid]
            process.terminate()  # uvicorn shuts down cleanly, then re-raises SIGTERM
            assert process.wait(timeout=30) in (0, -15)
            assert "Application shutdown complete" in log.read_text().rsplit("Started server", 1)[-1]
    records_after, rows_after = verify_and_export(env)
    assert records_after == records + 3  # its decision, recording and call status
    assert [row["call_sid"] for row in rows_after] == [row["call_sid"] for row in rows] + [call_sid]
