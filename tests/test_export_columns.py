"""Every export column is declared once (consent_store.columns); CSV, JSON Lines, receipts and
SQLite's own CSV lines all follow it, for any value a caller or Twilio could send.

The property test writes hostile values (formula starts, quotes, commas, CR/LF, NUL, unicode,
odd phones) into every free-text place of real decisions and recordings, and holds the SQLite
fast path's bytes equal to the Python renderer's.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import consent_store.sqlite.export as sqlite_export
from consent_store import ConsentDecision, DecisionRow, ExportFilter, RecordingStatus, SQLiteStore
from consent_store.columns import COLUMNS, FORMULA_STARTS, csv_cells, render_csv, restore
from consent_store.phone import is_e164_format
from ivr.evidence.export import render_rows

IDENTITY = ("stir_verstat", "called_number", "account_sid", "from_country", "caller_name")
EVERYTHING = ExportFilter()
CALLER_NAME = "=cmd|' /C calc'!A0"
STARTS = sorted(FORMULA_STARTS | {"'", '"', ",", "\n", "\x00"})
hostile = st.one_of(
    st.text(max_size=12),
    st.builds(str.__add__, st.sampled_from(STARTS), st.text(max_size=10)),
    st.sampled_from([CALLER_NAME, "a,b", 'say "hi"', "two\r\nlines", "nul\x00here", "Ñandú ✓", "x" * 3000]),
)
phones = st.one_of(
    st.from_regex(r"\+[0-9]{0,17}", fullmatch=True), st.sampled_from(["+١٢٣٤٥٦٧٨", "+1 415"]), hostile
)
identity = st.fixed_dictionaries({key: st.none() | hostile for key in IDENTITY})
recording = st.none() | st.tuples(hostile, hostile | st.none(), st.none() | st.integers(-5, 10**6))


@st.composite
def decisions(
    draw: st.DrawFn,
) -> list[tuple[ConsentDecision, tuple[str, str | None, int | None] | None, str]]:
    """A few decisions, each with hostile text anywhere a caller, a manager or Twilio sets it."""
    found = []
    for i in range(draw(st.integers(1, 12))):
        plain = draw(st.booleans())  # plain rows among hostile ones, as in a real log
        found.append(
            (
                ConsentDecision(
                    f"CA{i:032x}" if plain else f"{draw(hostile)}#{i}",
                    f"+1415555{i:04d}",
                    "Acme" if plain else draw(hostile),
                    "opt_in",
                    ("offers",) if plain else tuple(draw(st.lists(hostile, min_size=1, max_size=3))),
                    "1" if plain else draw(hostile),
                    "en-US" if plain else draw(hostile),
                    1,
                    "a" * 64,
                    "spoken",
                    **draw(identity),
                ),
                draw(recording),
                draw(phones),
            )
        )
    return found


async def both_ways(path: Path, where: ExportFilter = EVERYTHING) -> tuple[bytes, bytes, int]:
    """The fast path's bytes, the Python renderer's for `export_decisions`' rows, and how many
    rows the fast path left to Python."""
    slow_rows = 0

    def counting_render(rows: Sequence[DecisionRow]) -> bytes:
        nonlocal slow_rows
        slow_rows += len(rows)
        return render_csv(rows)

    async with SQLiteStore(path) as store:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sqlite_export, "render_csv", counting_render)
            chunks = store.export_csv_chunks(where)
            async with contextlib.aclosing(chunks):
                fast = b"".join([chunk.data async for chunk in chunks])
        rows = [row async for row in store.export_decisions(where)]
    return fast, render_csv(rows), slow_rows


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(log=decisions())
async def test_fast_csv_equals_the_python_renderer_for_hostile_values_in_every_column(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, log: list
) -> None:  # type: ignore[type-arg]
    monkeypatch.setattr(sqlite_export, "WINDOW", 3)  # several windows, some read by the second process
    path = tmp_path_factory.mktemp("hostile") / "store.db"
    async with SQLiteStore(path) as store:
        for made, heard, _ in log:
            await store.record_decision(made)
            if heard is not None:
                await store.attach_recording(
                    RecordingStatus(made.call_sid, *heard[:1], "completed", *heard[1:])
                )
    used = {made.phone for made, _, _ in log}
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        for made, _, phone in log:  # phones as a stored subject may hold them (unique)
            if phone not in used:
                used.add(phone)
                db.execute("UPDATE subjects SET phone = ? WHERE phone = ?", (phone, made.phone))
    fast, expected, _ = await both_ways(path, ExportFilter(include_demo=True))
    assert fast == expected


@pytest.mark.parametrize(
    "phone", ["+14155550123", "+1", "+0123456789", "+1234567890123456", "+1415555012x", "+٣", "=1", ""]
)
async def test_fast_csv_phone_rule_is_is_e164_format(tmp_path: Path, phone: str) -> None:
    path = tmp_path / "store.db"
    async with SQLiteStore(path) as store:
        await store.record_decision(
            ConsentDecision(
                "CA1", "+14155550000", "Acme", "opt_in", ("x",), "1", "en-US", 1, "a" * 64, "spoken"
            )
        )
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE subjects SET phone = ?", (phone,))
    fast, expected, _ = await both_ways(path)
    assert fast == expected
    cell = next(csv.reader(io.StringIO(fast.decode(), newline="")))[1]
    assert cell == (phone if is_e164_format(phone) or phone[:1] not in FORMULA_STARTS else "'" + phone)


@pytest.mark.parametrize("readers", [1, 2])
async def test_a_hostile_caller_name_is_neutralised_in_csv_and_kept_verbatim_in_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, readers: int
) -> None:
    monkeypatch.setattr(sqlite_export, "READERS", readers)
    monkeypatch.setattr(sqlite_export, "WINDOW", 4)
    names = [CALLER_NAME, "JOHN\r\nSMITH", "-" + "x" * 10_240, "\t@SUM(A1)", "'quoted", 'Ana, "Ñ"']
    path = tmp_path / "store.db"
    async with SQLiteStore(path) as store:
        for i, name in enumerate(names * 2):
            await store.record_decision(
                ConsentDecision(
                    f"CA{i:032x}",
                    f"+1415555{i:04d}",
                    "Acme",
                    "opt_in",
                    ("offers",),
                    "1",
                    "en-US",
                    1,
                    "a" * 64,
                    "spoken",
                    stir_verstat="TN-Validation-Passed-A",
                    called_number="+15550001111",
                    account_sid="AC" + "1" * 32,
                    from_country="US",
                    caller_name=name,
                )
            )
        rows = [row async for row in store.export_decisions(ExportFilter())]
    fast, expected, _ = await both_ways(path)
    assert fast == expected
    written = list(csv.reader(io.StringIO(fast.decode(), newline="")))
    name_at = [c.name for c in COLUMNS].index("caller_name")
    assert [cells[name_at] for cells in written] == [
        "'" + n if n[:1] in (*FORMULA_STARTS, "'") else n for n in names * 2
    ]
    assert [restore(cells[name_at]) for cells in written] == names * 2
    jsonl = [json.loads(line) for line in render_rows(rows, "jsonl").splitlines()]
    keys = list(jsonl[0])
    identity_at = keys.index(IDENTITY[0])
    assert [r["caller_name"] for r in jsonl] == names * 2
    assert keys[identity_at : identity_at + len(IDENTITY)] == list(IDENTITY)
    receipt = json.loads(render_rows(rows[:1], "receipts"))
    assert receipt["caller_identity"] == {
        "stir_verstat": "TN-Validation-Passed-A",
        "called_number": "+15550001111",
        "account_sid": "AC" + "1" * 32,
        "from_country": "US",
        "caller_name": CALLER_NAME,
    }


async def test_plain_caller_identity_keeps_the_fast_path_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_export, "READERS", 1)  # no second process racing ahead
    monkeypatch.setattr(sqlite_export, "WINDOW", 7)
    path = tmp_path / "store.db"
    async with SQLiteStore(path) as store:
        for i in range(60):
            await store.record_decision(
                ConsentDecision(
                    f"CA{i:032x}",
                    f"+1415555{i:04d}",
                    "Acme",
                    "opt_in",
                    ("offers",),
                    "1",
                    "en-US",
                    1,
                    "a" * 64,
                    "spoken",
                    stir_verstat=("TN-Validation-Passed-A", None)[i % 2],
                    called_number="+15550001111",
                    account_sid="AC" + "1" * 32,
                    from_country="US",
                    caller_name=f"CALLER {i}",
                )
            )
    fast, expected, slow_rows = await both_ways(path)
    assert fast == expected
    # As without them: only the windows read before the first one taught SQL the shared cells.
    assert 0 < slow_rows <= 7 * (sqlite_export.IN_FLIGHT + 1) < 60


def test_a_decision_without_caller_identity_writes_the_data_it_always_did() -> None:
    made = ConsentDecision("CA1", "+14155550000", "Acme", "opt_in", ("x",), "1", "en-US", 1, "a" * 64, "s")
    assert list(made.to_event().fields) == [
        "action",
        "message_types",
        "digits",
        "locale",
        "script_version",
        "script_sha256",
    ]
    known = ConsentDecision(
        "CA1", "+14155550000", "Acme", "opt_in", ("x",), "1", "en-US", 1, "a" * 64, "s", caller_name="ANA"
    )
    assert known.to_event().fields["caller_name"] == "ANA" and "stir_verstat" not in known.to_event().fields


def test_every_column_has_a_csv_cell_a_json_key_and_a_receipt_place() -> None:
    row = DecisionRow(
        1, "t", None, "b", "opt_in", ("m",), "CA", "1", "en-US", 1, "a" * 64, None, None, None, "h"
    )
    assert len(csv_cells(row)) == len(COLUMNS)
    assert len({c.receipt for c in COLUMNS}) == len(COLUMNS) and all(c.receipt for c in COLUMNS)
    assert list(json.loads(render_rows([row], "jsonl"))) == [c.name for c in COLUMNS]
