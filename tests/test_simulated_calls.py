"""`ivr call` to a real business is a rehearsal; with --record its decision is flagged simulated.

A simulated decision is kept as evidence (the flag is in its hashed data) and left out of
the quality figures; only this service's own emulator, holding the auth token, can mark a
call simulated.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from consent_store import ExportFilter, open_store
from ivr.businesses import DEMO_NUMBER, ensure_demo_business
from ivr.twilio.webhooks import REHEARSAL_PARAM, simulated_mark
from tests.cli_runner import run_ivr
from tests.conftest import ACME, ACME_NUMBER, AUTH_TOKEN, Service

NUMBER = "+15550001111"


def ivr(db: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """`ivr ARGS` in this process (tests/cli_runner.py), without TWILIO_AUTH_TOKEN."""
    env = {"IVR_DATABASE_URL": f"sqlite:///{db}"} | extra_env
    return run_ivr(*args, env=env, drop=("TWILIO_AUTH_TOKEN",))


def events(db: Path) -> list[tuple[str, dict[str, object]]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT kind, body FROM events ORDER BY seq").fetchall()
    return [(kind, json.loads(body)["data"]) for kind, body in rows]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "ivr.db"

    async def with_demo() -> None:
        async with open_store(f"sqlite:///{path}") as store:
            assert await ensure_demo_business(store) is not None

    asyncio.run(with_demo())
    created = ivr(path, "business", "add", "--name", "Acme", "--number", NUMBER, "--message-type", "x")
    assert created.returncode == 0, created.stderr
    return path


def test_a_call_to_a_real_business_is_a_rehearsal_that_writes_nothing(db: Path) -> None:
    before = len(events(db))
    result = ivr(db, "call", "--to", NUMBER, "--keys", "1")
    assert result.returncode == 0, result.stderr
    assert "[en-US] Hello, thank you for calling Acme." in result.stdout
    assert "This was a rehearsal: nothing was recorded" in result.stdout and "--record" in result.stdout
    # The CLI's own note, not only the spoken line that begins alike (voice_scripts/locales/en.toml).
    assert "ended (hangup). This was a rehearsal: nothing was recorded (--record records it" in result.stdout
    assert len(events(db)) == before


def test_a_call_to_a_demo_business_records_as_before_unflagged(db: Path) -> None:
    result = ivr(db, "call", "--to", DEMO_NUMBER, "--keys", "11")
    assert result.returncode == 0, result.stderr
    assert "Recorded opt_in" in result.stdout and "simulated" not in result.stdout
    decisions = [data for kind, data in events(db) if kind == "decision"]
    assert len(decisions) == 1 and "simulated" not in decisions[0]


def test_record_writes_a_decision_flagged_simulated_that_stats_leave_out(db: Path) -> None:
    result = ivr(db, "call", "--to", NUMBER, "--keys", "1", "--record")
    assert result.returncode == 0, result.stderr
    assert (
        "Recorded opt_in for +15005550006 with Acme" in result.stdout and "flagged simulated" in result.stdout
    )
    decisions = [data for kind, data in events(db) if kind == "decision"]
    assert len(decisions) == 1 and decisions[0]["simulated"] is True
    assert ivr(db, "verify").returncode == 0
    exported = ivr(db, "export", "--format", "jsonl")
    assert exported.returncode == 0 and '"action": "opt_in"' in exported.stdout  # kept as evidence
    assert json.loads(exported.stdout)["simulated"] == 1  # flagged in every export format
    receipt = json.loads(ivr(db, "export", "--format", "receipts").stdout)
    assert receipt["evidence"]["simulated"] == 1
    [header, row] = ivr(db, "export", "--format", "csv").stdout.splitlines()
    assert dict(zip(header.split(","), row.split(","), strict=True))["simulated"] == "1"
    demo = ivr(db, "call", "--to", DEMO_NUMBER, "--keys", "11")
    assert demo.returncode == 0, demo.stderr
    rows = ivr(db, "export", "--format", "csv", "--include-demo").stdout.splitlines()
    flag = rows[0].split(",").index("simulated")
    assert [r.split(",")[flag] for r in rows[1:]] == ["1", ""]  # a real record's cell stays empty
    figures = json.loads(ivr(db, "stats", "--business", "Acme", "--format", "json").stdout)
    assert (
        sum(s["calls"] for s in figures["scripts"]) == 0 and sum(s["opt_in"] for s in figures["scripts"]) == 0
    )


def test_in_process_calls_sign_the_public_url_the_app_checks(db: Path) -> None:
    public = {"IVR_PUBLIC_URL": "https://ivr.example.com"}
    rehearsal = ivr(db, "call", "--to", NUMBER, "--keys", "1", **public)
    assert rehearsal.returncode == 0, rehearsal.stderr
    assert "rehearsal" in rehearsal.stdout
    recorded = ivr(db, "call", "--to", NUMBER, "--keys", "1", "--record", **public)
    assert recorded.returncode == 0, recorded.stderr
    assert "flagged simulated" in recorded.stdout


async def test_a_simulated_mark_not_bound_to_the_call_is_recorded_as_real(service: Service) -> None:
    other = simulated_mark(AUTH_TOKEN, "CA" + "0" * 32)  # a mark for another call
    wrong_token = "simulated." + "0" * 32
    for caller, mark in (("+14155550100", other), ("+14155550101", wrong_token)):
        call = await service.twilio.call(ACME_NUMBER, caller, ["1"], extra_params={REHEARSAL_PARAM: mark})
        [row] = [r async for r in service.store.export_decisions(ExportFilter(call_sid=call.call_sid))]
        assert row.business == ACME
        assert await service.store.count_decisions(ExportFilter(call_sid=call.call_sid, simulated=False)) == 1
    figures = await service.store.opt_in_quality(ACME, ("en-US",))
    assert sum(s.calls for s in figures.scripts) == 2


async def test_a_simulated_mark_bound_to_the_call_flags_it(service: Service) -> None:
    from ivr.twilio.emulator import new_sid

    call_sid = new_sid("CA")
    mark = {REHEARSAL_PARAM: simulated_mark(AUTH_TOKEN, call_sid)}
    await service.twilio.call(ACME_NUMBER, "+14155550100", ["1"], call_sid=call_sid, extra_params=mark)
    assert await service.store.count_decisions(ExportFilter(call_sid=call_sid, simulated=True)) == 1
    assert await service.store.count_decisions(ExportFilter(simulated=False)) == 0
    figures = await service.store.opt_in_quality(ACME, ("en-US",))
    assert sum(s.calls for s in figures.scripts) == 0
