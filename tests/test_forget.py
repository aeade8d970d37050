"""`ivr forget`: a caller's number disappears from reads and exports; the chain still verifies."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
from pathlib import Path

from consent_store import ExportFilter
from tests.cli_runner import run_ivr
from tests.conftest import ACME, ACME_NUMBER, CALLER, Service

OTHER = "+14155550999"


def ivr(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`ivr ARGS` in this process (tests/cli_runner.py); async tests call it through asyncio.to_thread."""
    return run_ivr(*args, env={"IVR_DATABASE_URL": db_url})


async def test_forgetting_a_phone_erases_it_everywhere_and_keeps_the_chain(service: Service) -> None:
    first = await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
    await service.twilio.call(ACME_NUMBER, CALLER, ["9"])
    await service.twilio.call(ACME_NUMBER, OTHER, ["1"])
    result = await asyncio.to_thread(ivr, service.db_url, "forget", "--phone", CALLER)
    assert result.returncode == 0, result.stderr
    assert "from 2 decision(s)" in result.stdout and first.recording_sid in result.stdout

    rows = [r async for r in service.store.export_decisions(ExportFilter())]
    assert [(r.phone, r.action) for r in rows] == [(None, "opt_in"), (None, "opt_out"), (OTHER, "opt_in")]
    assert await service.store.standing(CALLER, ACME) is None
    path = service.db_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM subjects WHERE phone = ?", (CALLER,)).fetchone() == (0,)
        dumped = "\n".join(db.iterdump())
        [erasure] = [json.loads(b) for (b,) in db.execute("SELECT body FROM events WHERE kind = 'erasure'")]
    assert CALLER not in dumped and CALLER.removeprefix("+") not in dumped
    assert erasure["data"]["decisions"] == 2 and erasure["data"]["reason"] == "erasure request"
    assert (await service.store.verify()).intact
    exported = await asyncio.to_thread(ivr, service.db_url, "export", "--format", "jsonl")
    assert CALLER not in exported.stdout and OTHER in exported.stdout

    # The same person calling again starts afresh, unlinkable to the erased records.
    await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
    standing = await service.store.standing(CALLER, ACME)
    assert standing is not None and standing.action == "opt_in"


async def test_forget_with_a_bad_or_unknown_phone_exits_2(service: Service) -> None:
    for phone, message in (("12345", "not a phone number"), ("+14155550000", "holds nothing")):
        result = await asyncio.to_thread(ivr, service.db_url, "forget", "--phone", phone)
        assert result.returncode == 2 and message in result.stderr


async def test_the_erased_number_is_not_left_in_the_database_file(service: Service) -> None:
    await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
    assert (await asyncio.to_thread(ivr, service.db_url, "forget", "--phone", CALLER)).returncode == 0
    path = service.db_url.removeprefix("sqlite:///")
    raw = b"".join(Path(p).read_bytes() for p in (path, path + "-wal") if os.path.exists(p))
    assert CALLER.encode() not in raw
