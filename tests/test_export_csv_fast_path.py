"""The SQLite CSV fast path writes exactly the bytes `csv_line` writes, whatever the values.

SQLite builds the lines itself (consent_store.sqlite.export) on two processes; every
export here is compared byte for byte with rendering `export_decisions`' rows through
`ivr.evidence.export.render_rows`, over awkward values: formula starts, quotes, commas, CR/LF,
NUL, non-E.164 and erased phones, missing and odd recordings, unicode.
"""

from __future__ import annotations

import contextlib
import io
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

import consent_store.sqlite.export as sqlite_export
from consent_store import (
    ConsentDecision,
    DecisionRow,
    ExportFilter,
    RecordingStatus,
    SQLiteStore,
)
from consent_store.sqlite import export_worker as sqlite_export_worker
from ivr.evidence.export import render_csv_rows, render_rows

AWKWARD = (
    "=1+1",
    "+1",
    "-2",
    "@SUM(A1)",
    "\tx",
    "\rx",
    "'quoted",
    'say "hi"',
    "a,b",
    "two\r\nlines",
    "line\nfeed",
    "nul\x00here",
    "Clínica Ñandú ✓",
    "",
)
PHONES = (
    "+14155559999",
    "+34600000001",
    "+1",
    "+0123456789",
    "+1415555010x",
    "=cmd",
    "-5",
    "5551234",
    "+١٢٣٤٥٦٧٨",
)


def decision(
    i: int, call_sid: str, business: str, types: tuple[str, ...], digits: str, locale: str
) -> ConsentDecision:
    return ConsentDecision(
        call_sid,
        f"+1415555{i:04d}",
        business,
        ("opt_in", "declined", "opt_out")[i % 3],  # type: ignore[arg-type]
        types,
        digits,
        locale,
        1 + i % 2,
        f"{i % 4:064x}",
        "spoken",
        prompts_heard=1 + i % 3,
        seconds_to_decision=3.25 + i,  # differs on every call, like a real log
    )


async def fill(path: Path) -> None:
    """Plain decisions, then every awkward value in every free-text place."""
    async with SQLiteStore(path) as store:
        for i in range(40):  # plain, with recordings: the fast path takes these
            sid = f"CA{i:032x}"
            await store.record_decision(decision(i, sid, "Acme", ("offers", "news"), "1", "en-US"))
            await store.attach_recording(
                RecordingStatus(sid, f"RE{i:032x}", "completed", f"https://api.example/{i}", 10 + i)
            )
        for i, text in enumerate(AWKWARD, start=100):
            await store.record_decision(
                decision(i, f"CA{i}{text}", text or "Empty", (text, "plain"), text, text)
            )
            await store.attach_recording(RecordingStatus(f"CA{i}{text}", f"RE{i}", "completed", None, None))
            sid = f"CAr{i}"
            await store.record_decision(decision(i, sid, "Acme", ("offers", "news"), "1", "en-US"))
            await store.attach_recording(RecordingStatus(sid, text, "completed", text, i))
        # A call with only an 'absent' status, one with an absent then a completed recording,
        # one whose completed recording came before a later status, one with no recording at all.
        await store.record_decision(decision(200, "CAabsent", "Acme", ("offers",), "1", "en-US"))
        await store.attach_recording(RecordingStatus("CAabsent", "REabsent", "absent", None, None))
        await store.record_decision(decision(201, "CAboth", "Acme", ("offers",), "1", "en-US"))
        await store.attach_recording(RecordingStatus("CAboth", "REa", "absent", None, None))
        await store.attach_recording(RecordingStatus("CAboth", "REb", "completed", "https://x/b", 7))
        await store.record_decision(decision(202, "CAlater", "Acme", ("offers",), "1", "en-US"))
        await store.attach_recording(RecordingStatus("CAlater", "REc", "completed", "https://x/c", 8))
        await store.attach_recording(RecordingStatus("CAlater", "REd", "failed", None, None))
        await store.record_decision(decision(203, "CAnone", "Acme", ("offers",), "1", "en-US"))
        for i in range(204, 240):  # plain again after the awkward ones
            await store.record_decision(decision(i, f"CAz{i}", "Acme", ("offers", "news"), "1", "en-US"))
    db = sqlite3.connect(path)
    with db:
        subjects = [s for (s,) in db.execute("SELECT subject FROM subjects ORDER BY rowid")]
        for subject, phone in zip(subjects[1::3], PHONES + AWKWARD[4:], strict=False):
            db.execute("UPDATE subjects SET phone = ? WHERE subject = ?", (phone, subject))
        db.execute("DELETE FROM subjects WHERE subject = ?", (subjects[2],))  # an erased phone
    db.close()


async def both_ways(path: Path, where: ExportFilter) -> tuple[bytes, bytes, int]:
    """The fast path's bytes, `render_rows`' bytes, and how many rows took the slow way."""
    slow_rows = 0

    def counting_render(rows: Sequence[DecisionRow]) -> bytes:
        nonlocal slow_rows
        slow_rows += len(rows)
        return render_csv_rows(rows)

    async with SQLiteStore(path) as store:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sqlite_export, "render_csv", counting_render)
            chunks = store.export_csv_chunks(where)
            async with contextlib.aclosing(chunks):
                fast = b"".join([chunk.data async for chunk in chunks])
        rows = [row async for row in store.export_decisions(where)]
    return fast, render_rows(rows, "csv"), slow_rows


@pytest.fixture
def small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_export, "WINDOW", 7)  # many windows, read by both processes


@pytest.mark.parametrize("readers", [1, 2])
async def test_fast_csv_is_byte_identical_to_csv_line_for_awkward_values(
    tmp_path: Path, small_windows: None, monkeypatch: pytest.MonkeyPatch, readers: int
) -> None:
    monkeypatch.setattr(sqlite_export, "READERS", readers)
    path = tmp_path / "store.db"
    await fill(path)
    fast, expected, slow_rows = await both_ways(path, ExportFilter(include_demo=True))
    assert fast == expected
    assert 0 < slow_rows < len(expected.splitlines())  # some windows were fast


async def test_fast_csv_renders_only_the_first_window_of_a_plain_log_the_slow_way(
    tmp_path: Path, small_windows: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_export, "READERS", 1)  # no second process racing ahead
    path = tmp_path / "store.db"
    async with SQLiteStore(path) as store:
        for i in range(60):
            sid = f"CA{i:032x}"
            await store.record_decision(
                ConsentDecision(
                    sid,
                    f"+1415555{i:04d}",
                    "Acme",
                    "opt_in",
                    ("offers",),
                    "1",
                    "en-US",
                    1,
                    "a" * 64,
                    "spoken",
                    prompts_heard=1,
                    seconds_to_decision=3.25 + i,  # differs on every call, as in a real log
                )
            )
            await store.attach_recording(
                RecordingStatus(sid, f"RE{i:032x}", "completed", f"https://x/{i}", i)
            )
    fast, expected, slow_rows = await both_ways(path, ExportFilter())
    assert fast == expected
    # The first window taught SQL the shared cells; the ones already queued were read without.
    assert 0 < slow_rows <= 7 * sqlite_export.IN_FLIGHT < 60


@pytest.mark.parametrize(
    "where",
    [
        ExportFilter(business="Acme"),
        ExportFilter(action="declined"),
        ExportFilter(business="=1+1"),
        ExportFilter(business="nobody"),
    ],
    ids=["business", "action", "awkward business", "no rows"],
)
async def test_fast_csv_filters_like_export_decisions(
    tmp_path: Path, small_windows: None, where: ExportFilter
) -> None:
    path = tmp_path / "store.db"
    await fill(path)
    fast, expected, _ = await both_ways(path, where)
    assert fast == expected


async def test_fast_csv_reports_the_snapshot_and_first_and_last_record(
    tmp_path: Path, small_windows: None
) -> None:
    path = tmp_path / "store.db"
    await fill(path)
    heads: list[tuple[int, str | None]] = []
    async with SQLiteStore(path) as store:
        chunks = [
            chunk
            async for chunk in store.export_csv_chunks(
                ExportFilter(), on_snapshot=lambda s, h: heads.append((s, h))
            )
        ]
        rows = [row async for row in store.export_decisions(ExportFilter())]
        head = await store.event_count()
    assert [seq for seq, _ in heads] == [head]
    assert sum(chunk.rows for chunk in chunks) == len(rows)
    assert chunks[0].first_hash == rows[0].record_hash
    assert chunks[-1].last_hash == rows[-1].record_hash
    for chunk in chunks:
        assert chunk.data.count(b"\r\n") >= chunk.rows


async def test_fast_csv_of_an_empty_store_is_empty(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "store.db") as store:
        chunks = [chunk async for chunk in store.export_csv_chunks(ExportFilter())]
    assert chunks == []


async def test_fast_csv_through_an_older_record_is_what_export_decisions_reads(
    tmp_path: Path, small_windows: None
) -> None:
    path = tmp_path / "store.db"
    await fill(path)
    async with SQLiteStore(path) as store:
        then = await store.event_count()
        for i in range(300, 320):  # the log grows after the export was taken
            sid = f"CAlate{i}"
            await store.record_decision(decision(i, sid, "Acme", ("offers",), "1", "en-US"))
            await store.attach_recording(RecordingStatus(sid, f"RE{i}", "completed", f"https://x/{i}", i))
        await store.forget_phone("+14155550100", "test", "erasure after the export")
        for through in (then, then + 3, 10**9):
            heads: list[tuple[int, str | None]] = []
            chunks = store.export_csv_chunks(
                ExportFilter(through_seq=through),
                on_snapshot=lambda seq, digest, heads=heads: heads.append((seq, digest)),
            )
            fast = b"".join([chunk.data async for chunk in chunks])
            expected_heads: list[tuple[int, str | None]] = []
            rows = [
                row
                async for row in store.export_decisions(
                    ExportFilter(through_seq=through),
                    on_snapshot=lambda s, d, found=expected_heads: found.append((s, d)),
                )
            ]
            assert fast == render_rows(rows, "csv")
            assert heads == expected_heads


def test_the_worker_keeps_lines_that_arrive_together_with_its_go(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exporter may send the first cells right behind "go": one read brings both."""
    read_end, write_end = os.pipe()
    try:
        monkeypatch.setattr(
            sqlite_export_worker.sys, "stdin", io.TextIOWrapper(io.FileIO(read_end, closefd=False))
        )
        commands = sqlite_export_worker._Commands()
        os.write(write_end, b'go 42\n[["a"]]\n[["b"]')
        assert commands.next() == b"go 42"
        os.write(write_end, b"]\n")
        assert commands.ready() == [b'[["a"]]', b'[["b"]]']
        assert commands.ready() == []
    finally:
        os.close(read_end)
        os.close(write_end)
