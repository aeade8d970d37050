"""Older databases are upgraded in place, keeping their chain; newer ones are refused."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from consent_store import ConsentDecision, ExportFilter, SQLiteStore
from consent_store.chain import GENESIS_HASH, canonical_json, event_hash
from consent_store.exceptions import SchemaTooNew
from consent_store.sqlite.schema import MIGRATIONS, SCHEMA_VERSION
from tests.cli_runner import run_ivr

PHONE = "+14155550123"
SALT = "00112233445566778899aabbccddeeff"
SUBJECT = hashlib.sha256((SALT + PHONE).encode()).hexdigest()
SPOKEN = "Press 1 to agree to WhatsApp messages from Acme."
SCRIPT_SHA = hashlib.sha256(SPOKEN.encode()).hexdigest()
V1_EVENTS: list[tuple[str, str | None, str | None, str | None, dict[str, object]]] = [
    # kind, call_sid, subject, action, data
    ("business", None, None, None, {"change": "created", "numbers": ["+15550001111"], "author": "v1"}),
    ("decision", "CAv1", SUBJECT, "opt_in", {
        "action": "opt_in", "message_types": ["delivery updates"], "digits": "1", "locale": "en-US",
        "script_version": 1, "script_sha256": SCRIPT_SHA,
    }),
]  # fmt: skip


def ivr(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`ivr ARGS` in this process (tests/cli_runner.py); `ivr serve` as a real process (a server
    that wrongly started would hang the test process; a process times out)."""
    if args[0] != "serve":
        return run_ivr(*args, env={"IVR_DATABASE_URL": f"sqlite:///{path}"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    env["IVR_DATABASE_URL"] = f"sqlite:///{path}"
    command = [sys.executable, "-m", "ivr", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def user_version(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def make_v1_database(path: Path) -> list[str]:
    """A database as version 1 of the program left it: its schema and two chained events; the hashes."""
    hashes, prev = [], GENESIS_HASH
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.executescript(MIGRATIONS[0])
        conn.execute("PRAGMA user_version = 1")
        conn.execute(
            "INSERT INTO businesses (name, message_types, locales, demo, created_at)"
            " VALUES ('Acme', '[\"delivery updates\"]', '[\"en-US\"]', 0, '2025-01-01T00:00:00.000000Z')"
        )
        conn.execute("INSERT INTO numbers (number, business) VALUES ('+15550001111', 'Acme')")
        conn.execute("INSERT INTO subjects (subject, phone, salt) VALUES (?, ?, ?)", (SUBJECT, PHONE, SALT))
        conn.execute("INSERT INTO spoken_texts (sha256, text) VALUES (?, ?)", (SCRIPT_SHA, SPOKEN))
        for seq, (kind, call_sid, subject, action, data) in enumerate(V1_EVENTS, start=1):
            at, key = f"2025-01-01T00:00:0{seq}.000000Z", f"{kind}:{call_sid or 'Acme'}"
            body = canonical_json(
                {"seq": seq, "recorded_at": at, "kind": kind, "key": key, "call_sid": call_sid,
                 "business": "Acme", "subject": subject, "data": data}
            )  # fmt: skip
            digest = event_hash(prev, body)
            conn.execute(
                "INSERT INTO events (seq, recorded_at, kind, idempotency_key, call_sid, business, subject,"
                " action, body, prev_hash, hash) VALUES (?, ?, ?, ?, ?, 'Acme', ?, ?, ?, ?, ?)",
                (seq, at, kind, key, call_sid, subject, action, body, prev, digest),
            )
            hashes.append(digest)
            prev = digest
    return hashes


def new_decision(call_sid: str, action: str = "declined") -> ConsentDecision:
    return ConsentDecision(
        call_sid=call_sid, phone=PHONE, business="Acme", action=action,  # type: ignore[arg-type]
        message_types=("delivery updates",), digits="2", locale="en-US", script_version=1,
        script_sha256=SCRIPT_SHA, spoken_text=SPOKEN,
    )  # fmt: skip


async def test_version_1_database_is_upgraded_and_its_old_events_still_verify(tmp_path: Path) -> None:
    path = tmp_path / "ivr.db"
    hashes = make_v1_database(path)
    async with SQLiteStore(path) as store:
        result = await store.verify()
        [row] = [r async for r in store.export_decisions(ExportFilter())]
        standing = await store.standing(PHONE, "Acme")
    assert user_version(path) == SCHEMA_VERSION
    assert (result.intact, result.count, result.head) == (True, 2, hashes[-1])
    assert (row.seq, row.call_sid, row.phone, row.action) == (2, "CAv1", PHONE, "opt_in")
    assert row.record_hash == hashes[1]
    assert standing is not None and (standing.action, standing.seq) == ("opt_in", 2)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        checkpoints = conn.execute("SELECT seq, hash FROM checkpoints").fetchall()
    assert checkpoints == [(2, hashes[-1])]  # the upgrade anchors the chain it found


async def test_appends_after_the_upgrade_continue_the_old_chain(tmp_path: Path) -> None:
    path = tmp_path / "ivr.db"
    hashes = make_v1_database(path)
    async with SQLiteStore(path) as store:
        stored = await store.record_decision(new_decision("CAv2"))
        standing = await store.standing(PHONE, "Acme")
        result = await store.verify()
    assert (stored.seq, stored.prev_hash, stored.duplicate) == (3, hashes[-1], False)
    assert json.loads(stored.body)["subject"] == SUBJECT  # the v1 commitment to the phone is reused
    assert standing is not None and standing.seq == 2  # a decline does not change the opt-in standing
    assert (result.intact, result.count, result.head) == (True, 3, stored.hash)
    cli = ivr(path, "verify")
    assert (cli.returncode, cli.stderr) == (0, ""), cli.stderr
    assert cli.stdout == f"ok: 3 records, chain intact, head {stored.hash}\n"


async def test_reopening_an_upgraded_database_does_not_migrate_it_again(tmp_path: Path) -> None:
    path = tmp_path / "ivr.db"
    make_v1_database(path)
    for call_sid in ("CAa", "CAb"):
        async with SQLiteStore(path) as store:
            await store.record_decision(new_decision(call_sid))
    async with SQLiteStore(path) as store:
        result = await store.verify()
    assert user_version(path) == SCHEMA_VERSION and (result.intact, result.count) == (True, 4)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT seq FROM checkpoints").fetchall() == [(2,)]


async def test_new_database_is_created_at_the_current_version_with_append_only_triggers(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ivr.db"
    async with SQLiteStore(path) as store:
        assert (await store.verify()).count == 0
    assert user_version(path) == SCHEMA_VERSION
    with contextlib.closing(sqlite3.connect(path)) as conn:
        triggers = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert {"events_no_update", "events_no_delete", "checkpoints_no_delete"} <= triggers


def make_v99_database(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("CREATE TABLE future (x)")
        conn.execute("PRAGMA user_version = 99")


async def test_database_from_a_newer_program_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "ivr.db"
    make_v99_database(path)
    with pytest.raises(SchemaTooNew, match="version 99 is newer") as caught:
        await SQLiteStore(path).open()
    assert (caught.value.found, caught.value.supported) == (99, SCHEMA_VERSION)
    assert user_version(path) == 99
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert [n for (n,) in conn.execute("SELECT name FROM sqlite_master")] == ["future"]
    assert not (tmp_path / "ivr.db.chainhead").exists()


@pytest.mark.parametrize("command", [["verify"], ["export"], ["business", "list"], ["serve", "--port", "1"]])
def test_cli_on_a_newer_database_exits_2_with_one_line(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "ivr.db"
    make_v99_database(path)
    result = ivr(path, *command)
    assert (result.returncode, result.stdout) == (2, "")
    [line] = result.stderr.splitlines()
    assert line.startswith("ivr: error: Database schema version 99 is newer than this program supports")
    assert user_version(path) == 99


def make_v1_database_that_cannot_be_upgraded(path: Path) -> None:
    make_v1_database(path)
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("CREATE TABLE checkpoints (unrelated TEXT)")  # clashes with version 2's table


async def test_failed_upgrade_rolls_back_and_leaves_version_1_intact(tmp_path: Path) -> None:
    path = tmp_path / "ivr.db"
    make_v1_database_that_cannot_be_upgraded(path)
    with pytest.raises(Exception, match="checkpoints already exists"):
        await SQLiteStore(path).open()
    assert user_version(path) == 1
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (2,)
        names = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert "checkpoints_no_delete" not in names


def test_cli_on_a_database_that_cannot_be_upgraded_exits_1_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "ivr.db"
    make_v1_database_that_cannot_be_upgraded(path)
    result = ivr(path, "verify")
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_processes_opening_an_old_database_at_once_upgrade_it_once(tmp_path: Path) -> None:
    """Real processes: four at once, each with its own connection, racing for the upgrade."""
    # Each process read the version before taking the write lock, so the second one to get the
    # lock ran the same migration again ("duplicate column name").
    path = tmp_path / "ivr.db"
    make_v1_database(path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    env["IVR_DATABASE_URL"] = f"sqlite:///{path}"
    command = [sys.executable, "-m", "ivr", "verify"]
    processes = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outcomes = [p.communicate(timeout=60) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], outcomes
    assert user_version(path) == SCHEMA_VERSION
