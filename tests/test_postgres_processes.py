"""Scale-out on PostgreSQL: several real `ivr serve` processes on one database keep one chain,
and a caller whose decision cannot be written (connections killed mid-call) is told so."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx
import pytest

from consent_store import ExportFilter
from ivr.app import create_app
from ivr.businesses import DEMO_NAME, add_business
from ivr.twilio.emulator import TwilioEmulator, new_sid
from tests.cli_runner import run_ivr
from tests.conftest import ACME, ACME_NUMBER, AUTH_TOKEN, CALLER, make_settings
from tests.live_server import server, wait_until_healthy

SAME_KEY = "same-on-all-processes-0123456789abcdef"  # IVR_SECRET_KEY: 32+ characters

pytest_plugins = ["tests.pg_server"]

CONFIRMED = "Your choice has been recorded"
NOT_RECORDED = "we could not record your choice"
SERVERS = 3
CALLS = 90
# `ivr serve` processes started at once on an empty database.
STARTING = 5


def ivr(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """A real `python -m ivr` process: what a fresh process finds after the servers (crash, recovery)."""
    command = [sys.executable, "-m", "ivr", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


async def place_calls(bases: list[str]) -> dict[str, str]:
    """CALLS callers at once, spread over the servers; call_sid -> what the caller heard."""
    heard: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=30) as client:

        async def one(n: int) -> None:
            twilio, call_sid = TwilioEmulator(client, bases[n % len(bases)], AUTH_TOKEN), new_sid("CA")
            call = await twilio.call(ACME_NUMBER, f"+1415777{n:04d}", ["1"], call_sid=call_sid)
            heard[call_sid] = call.transcript

        await asyncio.gather(*(one(n) for n in range(CALLS)))
    return heard


@pytest.mark.slow
def test_three_servers_on_one_database_record_every_call_once_in_one_chain(
    pg_url: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "TWILIO_"))}
    env |= {"IVR_DATABASE_URL": pg_url, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "IVR_SECRET_KEY": SAME_KEY}
    added = run_ivr(  # set-up in-process (tests/cli_runner.py); servers and the checks after: processes
        "business", "add", "--name", ACME, "--number", ACME_NUMBER, "--message-type", "updates",
        env=env, drop=("IVR_", "TWILIO_"),
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    logs = [tmp_path / f"server{i}.log" for i in range(SERVERS)]
    with server(env, logs[0]) as first, server(env, logs[1]) as second, server(env, logs[2]) as third:
        for (process, base), log in zip((first, second, third), logs, strict=True):
            wait_until_healthy(base, process, log)
        heard = asyncio.run(place_calls([first[1], second[1], third[1]]))
    assert all(CONFIRMED in transcript for transcript in heard.values()), "a caller was not confirmed"

    verified = ivr(env, "verify")
    assert verified.returncode == 0, verified.stderr
    assert "chain intact" in verified.stdout
    exported = ivr(env, "export", "--format", "jsonl")
    assert exported.returncode == 0, exported.stderr
    call_sids = [json.loads(line)["call_sid"] for line in exported.stdout.splitlines() if line.strip()]
    assert sorted(call_sids) == sorted(heard), "a decision is missing or recorded twice"
    served = [log.read_text().count("recorded opt_in") for log in logs]
    assert all(served) and sum(served) == CALLS, f"calls per server: {served}"


async def _kill_connections_once_the_writer_waits(
    blocker: asyncpg.Connection, transaction: asyncpg.transaction.Transaction
) -> None:
    """The decision's transaction is inside the database, waiting: kill every connection but ours,
    wait until they are gone, then let go of the chain lock. (Held longer, the call's recording and
    status callbacks each waited the store's 15 s command timeout on it: 30 s a run.)"""
    for _ in range(250):
        if await blocker.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the decision never reached the database")
    killed = await blocker.fetch(
        "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"  # waits up to 10 s for each to end
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    assert killed and all(row[0] for row in killed), "a connection outlived pg_terminate_backend"
    await transaction.rollback()


async def test_killed_database_connections_mid_call_the_caller_hears_not_recorded_then_recovery(
    pg_url: str,
) -> None:
    app = create_app(make_settings(pg_url))
    async with app.router.lifespan_context(app):
        store = app.state.runtime.store
        await add_business(store, ACME, [ACME_NUMBER], ["delivery updates"])
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            twilio = TwilioEmulator(client, "http://testserver", AUTH_TOKEN)
            blocker = await asyncpg.connect(pg_url)
            transaction = blocker.transaction()
            killer: list[asyncio.Task[None]] = []

            async def press_1_while_the_database_fails(timeout: int) -> str:
                # Hold the chain lock so the decision's write waits inside the database, then kill it.
                await transaction.start()
                await blocker.execute("SELECT 1 FROM chain_head FOR UPDATE")
                killing = _kill_connections_once_the_writer_waits(blocker, transaction)
                killer.append(asyncio.create_task(killing))
                return "1"

            try:
                failed = await twilio.call(ACME_NUMBER, CALLER, press_1_while_the_database_fails)
                await killer[0]
            finally:
                await blocker.close()
            assert NOT_RECORDED in failed.transcript and CONFIRMED not in failed.transcript

            recovered = await twilio.call(ACME_NUMBER, CALLER, ["1"])
            assert CONFIRMED in recovered.transcript
            assert (await client.get("/healthz")).status_code == 200

        assert [r.call_sid async for r in store.export_decisions(ExportFilter())] == [recovered.call_sid]
        assert (await store.verify()).intact


@pytest.mark.slow
def test_servers_starting_together_on_an_empty_database_create_one_demo_business(
    pg_url: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "TWILIO_"))}
    env |= {"IVR_DATABASE_URL": pg_url, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "IVR_SECRET_KEY": SAME_KEY}
    logs = [tmp_path / f"server{i}.log" for i in range(STARTING)]
    with contextlib.ExitStack() as running:
        servers = [running.enter_context(server(env, log)) for log in logs]
        for (process, base), log in zip(servers, logs, strict=True):
            wait_until_healthy(base, process, log, seconds=90)
    rows = asyncio.run(_fetch(pg_url, "SELECT name, demo FROM businesses"))
    assert [tuple(r) for r in rows] == [(DEMO_NAME, 1)]
    created = asyncio.run(_fetch(pg_url, "SELECT business FROM events WHERE kind = 'business'"))
    assert [r[0] for r in created] == [DEMO_NAME]
    assert all(DEMO_NAME in log.read_text() for log in logs), "a server did not list the demo business"


async def _fetch(url: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()
