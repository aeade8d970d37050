"""Tampering with a closed SQLite file behind the store's back is detected by `verify` and `ivr verify`."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from consent_store import (
    Business,
    CallStatus,
    ConsentDecision,
    RecordingStatus,
    SQLiteStore,
    StoreError,
    VerifyResult,
)
from consent_store.chain import canonical_json, event_hash
from tests.cli_runner import run_ivr

CALLS = 12
N = 1 + 3 * CALLS  # the business event, then decision, recording and call status per call
TRIGGERS = ("events_no_update", "events_no_delete", "checkpoints_no_delete")


def decision(i: int) -> ConsentDecision:
    action = "opt_in" if i % 2 == 0 else "declined"
    return ConsentDecision(
        call_sid=f"CA{i:032x}", phone=f"+1415555{i:04d}", business="Acme", action=action,
        message_types=("delivery updates",), digits="1" if action == "opt_in" else "2", locale="en-US",
        script_version=1, script_sha256="ab" * 32, spoken_text=f"Press 1 to agree ({i}).",
    )  # fmt: skip


async def build(path: Path, calls: int = CALLS) -> None:
    """Decision at seq 2+3i, its recording at 3+3i, its call status at 4+3i."""
    async with SQLiteStore(path) as store:
        acme = Business("Acme", ("+15550001111",), ("delivery updates",), ("en-US",))
        await store.add_business(acme, {"en-US": "locale = 'en-US'"}, author="tests")
        for i in range(calls):
            await store.record_decision(decision(i))
            await store.attach_recording(RecordingStatus(f"CA{i:032x}", f"RE{i:032x}", "completed", "u", 31))
            await store.record_call_status(CallStatus(f"CA{i:032x}", "completed", 31, "Acme"))


@pytest.fixture
async def db(tmp_path: Path) -> Path:
    path = tmp_path / "ivr.db"
    await build(path)
    return path


@contextlib.contextmanager
def connect(path: Path, drop_triggers: bool = True) -> Iterator[sqlite3.Connection]:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for trigger in TRIGGERS if drop_triggers else ():
            conn.execute(f"DROP TRIGGER {trigger}")
        yield conn


def row(conn: sqlite3.Connection, seq: int) -> tuple[str, str, str]:
    found = conn.execute("SELECT body, prev_hash, hash FROM events WHERE seq = ?", (seq,)).fetchone()
    return found[0], found[1], found[2]


def insert_forged(conn: sqlite3.Connection, seq: int, prev_hash: str, template: int = 2) -> None:
    """A decision nobody made, hashed correctly over the prev_hash it claims."""
    forged = {"seq": seq, "call_sid": "CAforged", "key": "decision:CAforged"}
    body = json.loads(row(conn, template)[0]) | forged
    text = canonical_json(body)
    conn.execute(
        "INSERT INTO events (seq, recorded_at, kind, idempotency_key, call_sid, business, subject, action,"
        " body, prev_hash, hash) VALUES (?, ?, 'decision', ?, ?, ?, ?, ?, ?, ?, ?)",
        (seq, body["recorded_at"], body["key"], body["call_sid"], body["business"], body["subject"],
         body["data"]["action"], text, prev_hash, event_hash(prev_hash, text)),
    )  # fmt: skip


def rehash_from(conn: sqlite3.Connection, first: int) -> None:
    """Rewrite every later body's seq and re-chain the hashes, as a careful forger would."""
    prev = row(conn, first - 1)[2]
    for seq in range(first, N + 2):
        text = canonical_json(json.loads(row(conn, seq)[0]) | {"seq": seq})
        digest = event_hash(prev, text)
        update = "UPDATE events SET body = ?, prev_hash = ?, hash = ? WHERE seq = ?"
        conn.execute(update, (text, prev, digest, seq))
        prev = digest


def edit_column(column: str, value: str) -> Callable[[sqlite3.Connection], None]:
    return lambda conn: conn.execute(f"UPDATE events SET {column} = ? WHERE seq = 14", (value,))


def swap(conn: sqlite3.Connection) -> None:
    for old, new in ((10, -1), (25, 10), (-1, 25)):
        conn.execute("UPDATE events SET seq = ? WHERE seq = ?", (new, old))


def forge_in_middle(conn: sqlite3.Connection, rehash: bool) -> None:
    for seq in range(N, 19, -1):
        conn.execute("UPDATE events SET seq = seq + 1 WHERE seq = ?", (seq,))
    insert_forged(conn, 20, row(conn, 19)[2])
    if rehash:
        rehash_from(conn, 21)


EDIT_BODY = "UPDATE events SET body = replace(body, 'opt_in', 'opt_out') WHERE seq = 14"  # an opt-in
TAMPERS: dict[str, tuple[Callable[[sqlite3.Connection], object], int, str]] = {
    "edited-body": (lambda c: c.execute(EDIT_BODY), 14, "content does not match its hash"),
    "edited-action-column": (edit_column("action", "opt_out"), 14, "action column differs"),
    "edited-call-sid-column": (edit_column("call_sid", "CAother"), 14, "call_sid column differs"),
    "edited-business-column": (edit_column("business", "Other"), 14, "business column differs"),
    "edited-subject-column": (edit_column("subject", "0" * 64), 14, "subject column differs"),
    "edited-recorded-at-column": (edit_column("recorded_at", "2000-01-01T00:00:00.000000Z"), 14,
                                  "recorded_at column differs"),
    "edited-kind-column": (edit_column("kind", "recording"), 14, "kind column differs"),
    "edited-idempotency-key": (edit_column("idempotency_key", "decision:CAother"), 14, "idempotency key"),
    "edited-prev-hash-column": (edit_column("prev_hash", "f" * 64), 14, "previous-hash does not match"),
    "edited-hash-column": (edit_column("hash", "f" * 64), 14, "content does not match its hash"),
    "deleted-middle-record": (lambda c: c.execute("DELETE FROM events WHERE seq = 20"), 21,
                              "expected record 20 next but found 21"),
    "forged-appended-with-wrong-prev-hash": (lambda c: insert_forged(c, N + 1, row(c, N - 1)[2]), N + 1,
                                             "previous-hash does not match"),
    "forged-inserted-in-middle": (lambda c: forge_in_middle(c, rehash=False), 21,
                                  "previous-hash does not match"),
    "forged-in-middle-and-rest-rehashed": (lambda c: forge_in_middle(c, rehash=True), N,
                                           "differs from the checkpoint"),
    "two-records-swapped": (swap, 10, "previous-hash does not match"),
    "tail-of-3-deleted": (lambda c: c.execute("DELETE FROM events WHERE seq > ?", (N - 3,)), N - 2,
                          f"records {N - 2} to {N} are missing"),
}  # fmt: skip


def ivr_verify(path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """`ivr verify OPTIONS` in this process (tests/cli_runner.py)."""
    return run_ivr("verify", *options, env={"IVR_DATABASE_URL": f"sqlite:///{path}"})


async def verify(path: Path) -> VerifyResult:
    async with SQLiteStore(path) as store:
        return await store.verify()


def twin(path: Path) -> Path:
    """A copy of the database directory (head file included), so each verifier sees the same evidence."""
    return shutil.copytree(path.parent, path.parent.with_name(path.parent.name + "-twin")) / path.name


async def test_untouched_store_verifies_intact_with_the_head_file_beside_it(db: Path) -> None:
    result = await verify(db)
    assert (result.intact, result.count, result.warnings) == (True, N, ())
    assert json.loads((db.parent / "ivr.db.chainhead").read_text()) == {"seq": N, "hash": result.head}
    cli = ivr_verify(db)
    assert (cli.returncode, cli.stderr) == (0, "")
    assert cli.stdout == f"ok: {N} records, chain intact, head {result.head}\n"


@pytest.mark.parametrize(("tamper", "bad_seq", "problem"), list(TAMPERS.values()), ids=list(TAMPERS))
async def test_tampered_record_is_named_by_verify_and_by_the_cli(
    db: Path, tamper: Callable[[sqlite3.Connection], object], bad_seq: int, problem: str
) -> None:
    with connect(db) as conn:
        tamper(conn)
    copy = twin(db)
    result = await verify(db)
    assert (result.intact, result.first_bad_seq, result.warnings) == (False, bad_seq, ())
    assert result.problem is not None and problem in result.problem
    cli = ivr_verify(copy)
    assert cli.returncode == 1 and cli.stdout == ""
    [line] = cli.stderr.splitlines()
    assert line == (f"ivr: error: chain broken at record {bad_seq}: {result.problem} "
                    f"({result.count} records verified before it)")  # fmt: skip


async def test_truncated_tail_without_head_file_verifies_the_prefix_but_warns(db: Path) -> None:
    with connect(db) as conn:
        conn.execute("DELETE FROM events WHERE seq > ?", (N - 3,))
    (db.parent / "ivr.db.chainhead").unlink()
    copy = twin(db)
    result = await verify(db)
    assert (result.intact, result.first_bad_seq, result.count) == (True, None, N - 3)
    [warning] = result.warnings
    assert "no chain head file" in warning and "cannot be detected" in warning
    cli = ivr_verify(copy)
    assert cli.returncode == 0 and cli.stdout.startswith(f"ok: {N - 3} records, chain intact")
    assert cli.stderr.splitlines() == [f"ivr: warning: {warning.replace(str(db), str(copy))}"]


async def test_verifying_a_truncated_store_twice_reports_it_twice(db: Path) -> None:
    with connect(db) as conn:
        conn.execute("DELETE FROM events WHERE seq > ?", (N - 3,))
    assert (await verify(db)).first_bad_seq == N - 2
    assert ivr_verify(db).returncode == 1
    assert json.loads((db.parent / "ivr.db.chainhead").read_text())["seq"] == N


async def test_verifying_without_a_head_file_does_not_create_one_from_the_database(db: Path) -> None:
    (db.parent / "ivr.db.chainhead").unlink()
    assert len((await verify(db)).warnings) == 1
    assert not (db.parent / "ivr.db.chainhead").exists()


async def test_truncated_tail_stays_detected_after_new_records_are_appended(db: Path) -> None:
    with connect(db) as conn:
        conn.execute("DELETE FROM events WHERE seq > ?", (N - 3,))
    async with SQLiteStore(db) as store:
        with contextlib.suppress(StoreError):  # refusing to append to a truncated chain is fine too
            await store.record_decision(decision(99))
        result = await store.verify()
    assert not result.intact and result.first_bad_seq is not None and result.first_bad_seq <= N


async def test_truncation_behind_a_checkpoint_is_detected_even_without_head_file(tmp_path: Path) -> None:
    path = tmp_path / "ivr.db"
    await build(path, calls=90)  # 271 events: one checkpoint at 256
    with connect(path) as conn:
        [(checkpoint,)] = conn.execute("SELECT seq FROM checkpoints").fetchall()
        conn.execute("DELETE FROM events WHERE seq > ?", (checkpoint - 5,))
    (tmp_path / "ivr.db.chainhead").unlink()
    result = await verify(path)
    assert (result.intact, result.first_bad_seq, len(result.warnings)) == (False, checkpoint - 4, 1)
    assert result.problem is not None and f"checkpointed at record {checkpoint}" in result.problem
    assert ivr_verify(path).returncode == 1


REFUSED = {
    "update-column": "UPDATE events SET action = 'opt_out' WHERE seq = 14",
    "update-all": "UPDATE events SET body = body",
    "delete-one": "DELETE FROM events WHERE seq = 20", "delete-all": "DELETE FROM events",
    "update-checkpoint": "UPDATE checkpoints SET hash = 'x'", "delete-checkpoint": "DELETE FROM checkpoints",
}  # fmt: skip


@pytest.mark.parametrize("statement", list(REFUSED.values()), ids=list(REFUSED))
async def test_triggers_refuse_update_and_delete_as_append_only(tmp_path: Path, statement: str) -> None:
    path = tmp_path / "ivr.db"
    await build(path, calls=90)
    with connect(path, drop_triggers=False) as conn:
        before = conn.execute("SELECT count(*), sum(length(body)) FROM events").fetchone()
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(statement)
        assert conn.execute("SELECT count(*), sum(length(body)) FROM events").fetchone() == before
    assert (await verify(path)).intact


async def test_reanchor_after_a_deliberate_restore_accepts_the_restored_chain(db: Path) -> None:
    with connect(db) as conn:  # stands for restoring an older backup
        conn.execute("DELETE FROM events WHERE seq > ?", (N - 3,))
    assert ivr_verify(db).returncode == 1
    reanchored = ivr_verify(db, "--reanchor")
    assert reanchored.returncode == 0 and reanchored.stdout.startswith(f"ok: {N - 3} records")
    assert json.loads((db.parent / "ivr.db.chainhead").read_text())["seq"] == N - 3
    again = ivr_verify(db)
    assert again.returncode == 0 and again.stderr == ""


async def test_reanchor_refuses_a_chain_that_is_broken_inside(db: Path) -> None:
    with connect(db) as conn:
        conn.execute("UPDATE events SET body = replace(body, 'opt_in', 'opt_out') WHERE seq = 2")
    before = (db.parent / "ivr.db.chainhead").read_text()
    result = ivr_verify(db, "--reanchor")
    assert result.returncode == 1 and "record 2" in result.stderr
    assert (db.parent / "ivr.db.chainhead").read_text() == before
