"""The `ivr` command against a real SQLite file (no mocks): in-process through tests/cli_runner.py,
and as a real `python -m ivr` process where the process is the point (start-up, exiting, the real pipe)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from consent_store.columns import COLUMNS as EXPORT_COLUMNS
from ivr import __version__
from ivr.twilio.emulator import CallResult
from tests.cli_runner import run_ivr
from tests.conftest import ACME, ACME_NUMBER, BILINGUAL, BILINGUAL_NUMBER, CALLER, Service

# The export's columns: a public contract (DESIGN.md), written out here so that a rename or a
# reordering in consent_store.columns fails a test; new columns only ever come at the end.
COLUMNS = [
    "recorded_at",
    "phone",
    "business",
    "action",
    "message_types",
    "call_sid",
    "digits",
    "locale",
    "script_version",
    "script_sha256",
    "recording_sid",
    "recording_url",
    "recording_duration",
    "record_hash",
    "stir_verstat",
    "called_number",
    "account_sid",
    "from_country",
    "caller_name",
    "simulated",
    "channel",
    "recording_sha256",
]
RECORDED_AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
CALLER_2 = "+14155550999"
CALLER_3 = "+34600000333"
ADD_ACME = [
    "business",
    "add",
    "--name",
    "Acme",
    "--number",
    "+15550001111",
    "--message-type",
    "delivery updates",
]


def ivr(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `ivr ARGS` in this process (tests/cli_runner.py) with IVR_DATABASE_URL set; capture its output."""
    return run_ivr(*args, env={"IVR_DATABASE_URL": db_url})


def ivr_process(db_url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `python -m ivr ARGS` for real, for the tests whose point is the process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")} | {"IVR_DATABASE_URL": db_url}
    return subprocess.run(
        [sys.executable, "-m", "ivr", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def ivr_async(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`ivr` off the event loop, so the in-process app stays responsive meanwhile."""
    return await asyncio.to_thread(ivr, db_url, *args)


def one_line_error(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@dataclass
class Calls:
    """Three decisions: ACME opt-in, then (after `between`) ACME decline, BILINGUAL opt-in."""

    service: Service
    results: list[CallResult]
    between: str


@pytest.fixture
async def calls(service: Service) -> Calls:
    first = await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
    await asyncio.sleep(0.01)
    between = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    await asyncio.sleep(0.01)
    second = await service.twilio.call(ACME_NUMBER, CALLER_2, ["2"])
    third = await service.twilio.call(BILINGUAL_NUMBER, CALLER_3, ["1", "1"])
    return Calls(service, [first, second, third], between)


def csv_rows(text: str) -> tuple[list[str], list[dict[str, str]]]:
    header, *rows = list(csv.reader(io.StringIO(text)))
    return header, [dict(zip(header, row, strict=True)) for row in rows]


# --- help and version -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["serve"],
        ["business"],
        ["business", "add"],
        ["business", "list"],
        ["export"],
        ["verify"],
    ],
    ids=lambda c: " ".join(["ivr", *c]),
)
def test_help_exits_0_and_shows_usage_of_the_command(db_url: str, command: list[str]) -> None:
    result = ivr(db_url, *command, "--help")
    assert result.returncode == 0, result.stderr
    assert f"Usage: {' '.join(['ivr', *command])} " in result.stdout
    assert result.stderr == ""


def test_version_prints_the_package_version(db_url: str) -> None:
    """A real process: `python -m ivr --version` is the interpreter's entry point and start-up."""
    result = ivr_process(db_url, "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"ivr, version {__version__}"


# --- business add / list ----------------------------------------------------------------------------------


def test_business_add_prints_created_and_the_business_is_listed(db_url: str) -> None:
    result = ivr(db_url, *ADD_ACME, "--number", "+15550002222", "--message-type", "appointment reminders")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        "Created business 'Acme': numbers +15550001111, +15550002222; locales en-US"
    )
    listed = ivr(db_url, "business", "list")
    assert listed.returncode == 0
    assert listed.stdout.splitlines() == [
        "Acme\t+15550001111, +15550002222\ten-US\tdelivery updates; appointment reminders"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "B", "--number", "5550003333", "--message-type", "x"], "E.164"),
        (["--name", "Acme", "--number", "+15550003333", "--message-type", "x"], "already exists"),
        (["--name", "B", "--number", "+15550001111", "--message-type", "x"], "already belongs"),
        (["--name", "B", "--number", "+15550003333", "--message-type", " "], "--message-type"),
        (["--name", "B", "--number", "+15550003333", "--message-type", "x", "--locale", "fr-FR"], "fr-FR"),
        (["--name", "B", "--message-type", "x"], "--number"),
        (["--name", "B", "--number", "+15550003333", "--message-type", "a; b"], "must not contain ';'"),
    ],
    ids=[
        "bad-e164-number",
        "duplicate-name",
        "number-of-another-business",
        "empty-message-type",
        "unknown-locale",
        "missing-number",
        "semicolon-in-message-type",
    ],
)
def test_business_add_with_bad_input_exits_2_with_one_line_error_and_creates_nothing(
    db_url: str, args: list[str], message: str
) -> None:
    assert ivr(db_url, *ADD_ACME).returncode == 0
    error = one_line_error(ivr(db_url, "business", "add", *args))
    assert message in error
    assert [line.split("\t")[0] for line in ivr(db_url, "business", "list").stdout.splitlines()] == ["Acme"]
    assert "ok: 1 record, chain intact" in ivr(db_url, "verify").stdout


@pytest.mark.parametrize(
    "url",
    ["mysql://x", "sqlite://host/x.db", "sqlite:///{tmp}/missing/ivr.db"],
    ids=["unknown-scheme", "sqlite-with-host", "missing-directory"],
)
@pytest.mark.parametrize(
    "command",
    [["verify"], ["business", "list"], ["export"], ADD_ACME],
    ids=["verify", "business-list", "export", "business-add"],
)
def test_bad_database_url_exits_2_with_one_line_error(tmp_path: Path, url: str, command: list[str]) -> None:
    error = one_line_error(ivr(url.format(tmp=tmp_path), *command))
    assert "Database URL" in error
    assert not (tmp_path / "missing").exists()


def test_database_file_that_is_not_sqlite_fails_with_one_line_error_and_exits(tmp_path: Path) -> None:
    """A real process: the point is that `python -m ivr verify` exits (within 10 s), not only its error."""
    garbage = tmp_path / "garbage.db"
    garbage.write_text("this is not a database\n")
    result = ivr_process(f"sqlite:///{garbage}", "verify", timeout=10)
    assert result.returncode != 0 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line == f"ivr: error: cannot open SQLite database {garbage}: file is not a database"


# --- export input errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--format", "xml"],
        ["--business", "Unknown"],
        ["--since", "notadate"],
        ["--until", "31/01/2026"],
        ["--action", "maybe"],
    ],
    ids=["format-xml", "unknown-business", "since-not-a-date", "until-not-iso", "action-maybe"],
)
def test_export_with_bad_option_exits_2_with_one_line_error(db_url: str, args: list[str]) -> None:
    assert ivr(db_url, "migrate").returncode == 0  # export never creates a database
    error = one_line_error(ivr(db_url, "export", *args))
    assert args[1] in error


def test_export_of_unknown_business_to_file_does_not_create_the_file(db_url: str, tmp_path: Path) -> None:
    assert ivr(db_url, "migrate").returncode == 0
    one_line_error(ivr(db_url, "export", "--business", "Unknown", "-o", str(tmp_path / "out.csv")))
    assert not (tmp_path / "out.csv").exists()


# --- verify -----------------------------------------------------------------------------------------------


def test_verify_on_empty_database_exits_0_with_0_records(db_url: str) -> None:
    assert ivr(db_url, "migrate").returncode == 0  # verify never creates a database
    result = ivr(db_url, "verify")
    assert result.returncode == 0, result.stderr
    assert "0 records" in result.stdout


def test_verify_after_business_add_counts_1_record(db_url: str) -> None:
    assert ivr(db_url, *ADD_ACME).returncode == 0
    result = ivr(db_url, "verify")
    assert result.returncode == 0
    assert re.search(r"\b1 records?\b", result.stdout), result.stdout


# --- export with decisions (the app stays open; WAL lets the CLI read alongside) ---------------------------


def test_the_export_columns_are_the_public_contract_in_order() -> None:
    assert [c.name for c in EXPORT_COLUMNS] == COLUMNS


async def test_export_csv_has_the_contract_columns_and_one_row_per_decision_oldest_first(
    calls: Calls,
) -> None:
    """A real process: the export family's one run of `python -m ivr`, its CSV through a real pipe."""
    result = await asyncio.to_thread(ivr_process, calls.service.db_url, "export")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    header, rows = csv_rows(result.stdout)
    assert header == COLUMNS
    assert [r["call_sid"] for r in rows] == [c.call_sid for c in calls.results]
    assert [(r["phone"], r["business"], r["action"], r["digits"], r["locale"]) for r in rows] == [
        (CALLER, ACME, "opt_in", "1", "en-US"),
        (CALLER_2, ACME, "declined", "2", "en-US"),
        (CALLER_3, BILINGUAL, "opt_in", "1", "es-ES"),
    ]
    assert rows[0]["message_types"] == "delivery updates; appointment reminders"
    assert [r["recorded_at"] for r in rows] == sorted(r["recorded_at"] for r in rows)
    for row, call in zip(rows, calls.results, strict=True):
        assert RECORDED_AT.match(row["recorded_at"]), row["recorded_at"]
        assert dt.datetime.fromisoformat(row["recorded_at"]).utcoffset() == dt.timedelta(0)
        assert HEX64.match(row["script_sha256"]) and HEX64.match(row["record_hash"])
        assert row["recording_sid"].startswith("RE") and row["recording_sid"] == call.recording_sid
        assert row["script_version"] == "1" and row["recording_duration"] == "31"


async def test_export_jsonl_has_the_same_keys_and_message_types_as_a_list(calls: Calls) -> None:
    result = await ivr_async(calls.service.db_url, "export", "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [list(r) for r in records] == [COLUMNS] * 3
    assert records[0]["message_types"] == ["delivery updates", "appointment reminders"]
    assert records[2]["message_types"] == ["avisos de entrega"]
    assert [r["call_sid"] for r in records] == [c.call_sid for c in calls.results]
    assert all(RECORDED_AT.match(r["recorded_at"]) and r["recording_sid"].startswith("RE") for r in records)
    assert all(r["script_version"] == 1 and r["recording_duration"] == 31 for r in records)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--business", ACME], [0, 1]),
        (["--business", BILINGUAL], [2]),
        (["--action", "opt_in"], [0, 2]),
        (["--action", "declined"], [1]),
        (["--action", "opt_out"], []),
        (["--business", ACME, "--action", "opt_in"], [0]),
        (["--since", "{between}"], [1, 2]),
        (["--until", "{between}"], [0]),
        (["--since", "{between_plus_2h}"], [1, 2]),
        (["--since", "{second}"], [1, 2]),
        (["--until", "{second}"], [0]),
    ],
    ids=[
        "business-acme",
        "business-bilingual",
        "action-opt-in",
        "action-declined",
        "action-opt-out-none",
        "business-and-action",
        "since-between",
        "until-between",
        "since-with-offset",
        "since-is-inclusive",
        "until-is-exclusive",
    ],
)
async def test_export_filters_select_the_matching_decisions(
    calls: Calls, args: list[str], expected: list[int]
) -> None:
    _, everything = csv_rows((await ivr_async(calls.service.db_url, "export")).stdout)
    between = dt.datetime.fromisoformat(calls.between)
    values = {
        "between": calls.between,
        "between_plus_2h": between.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat(),
        "second": everything[1]["recorded_at"],
    }
    result = await ivr_async(calls.service.db_url, "export", *(a.format(**values) for a in args))
    assert result.returncode == 0, result.stderr
    _, rows = csv_rows(result.stdout)
    assert [r["call_sid"] for r in rows] == [calls.results[i].call_sid for i in expected]


async def test_export_to_file_writes_it_and_prints_a_count_line_on_stderr(
    calls: Calls, tmp_path: Path
) -> None:
    out = tmp_path / "decisions.csv"
    result = await ivr_async(calls.service.db_url, "export", "--action", "opt_in", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"Exported 2 decisions to {out}."]
    header, rows = csv_rows(out.read_text(encoding="utf-8"))
    assert header == COLUMNS and len(rows) == 2
    assert out.read_bytes().startswith(b"recorded_at,phone,") and b"\r\n" in out.read_bytes()


# --- verify after calls, then tampering ---------------------------------------------------------------------


async def test_verify_after_calls_exits_0_and_exits_1_naming_the_record_once_tampered(
    calls: Calls, tmp_path: Path
) -> None:
    path = tmp_path / "ivr.db"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None, timeout=10)) as conn:
        (events,) = conn.execute("SELECT count(*) FROM events").fetchone()
        (seq,) = conn.execute("SELECT min(seq) FROM events WHERE kind = 'decision'").fetchone()
    result = await ivr_async(calls.service.db_url, "verify")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"ok: {events} records, chain intact")

    with contextlib.closing(sqlite3.connect(path, isolation_level=None, timeout=10)) as conn:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE events SET body = body WHERE seq = ?", (seq,))
        conn.execute("DROP TRIGGER events_no_update")
        edit = conn.execute(
            "UPDATE events SET body = replace(body, '\"opt_in\"', '\"opt_out\"') WHERE seq = ?", (seq,)
        )
        assert edit.rowcount == 1
    error = one_line_error(await ivr_async(calls.service.db_url, "verify"), code=1)
    assert f"record {seq}:" in error
    assert "chain broken" in error
