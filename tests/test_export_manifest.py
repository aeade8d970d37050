"""Manifests beside exports, and `ivr verify --export FILE` proving a file against the store.

A one-byte edit anywhere in an export, a deleted, reordered or added row, an edited
manifest and a rewritten store must all fail the proof, naming the first difference.
The exports are written by the real CLI; most proofs run in-process (`check_export`,
exactly what `ivr verify --export` runs) to keep the many cases quick.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from ivr import __version__
from ivr.evidence.export_check import check_export
from ivr.evidence.manifest import manifest_path, read_manifest
from ivr.exceptions import ManifestError
from tests.conftest import ACME, ACME_NUMBER, BILINGUAL_NUMBER, CALLER, Service
from tests.test_cli import ivr, ivr_async, one_line_error
from tests.test_export_formats import db_path, stored_decisions

FORMATS = ("csv", "jsonl", "receipts")
HEADER_ROWS = {"csv": 1, "jsonl": 0, "receipts": 0}


@pytest.fixture
async def decisions(service: Service) -> Service:
    """Four decisions: two opt-ins, a decline, an opt-out."""
    await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
    await service.twilio.call(ACME_NUMBER, "+14155550999", ["2"])
    await service.twilio.call(BILINGUAL_NUMBER, "+34600000333", ["1", "1"])
    await service.twilio.call(ACME_NUMBER, CALLER, ["9"])
    return service


async def export(service: Service, path: Path, fmt: str, *args: str) -> Path:
    result = await ivr_async(service.db_url, "export", "--format", fmt, *args, "-o", str(path))
    assert result.returncode == 0, result.stderr
    return path


async def export_all_formats(service: Service, directory: Path, *args: str) -> dict[str, Path]:
    paths = {fmt: directory / f"consent.{fmt}" for fmt in FORMATS}
    await asyncio.gather(*(export(service, path, fmt, *args) for fmt, path in paths.items()))
    return paths


async def verify_export(service: Service, path: Path) -> tuple[int, str]:
    """Exit code and the one line `ivr verify --export` printed (standard output or error)."""
    result = await ivr_async(service.db_url, "verify", "--export", str(path))
    lines = (result.stdout + result.stderr).splitlines()
    assert len(lines) == 1, (result.stdout, result.stderr)
    return result.returncode, lines[0]


async def verify_all(service: Service, paths: list[Path]) -> list[tuple[int, str]]:
    return list(await asyncio.gather(*(verify_export(service, path) for path in paths)))


def head_of(path: Path) -> tuple[int, str]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        seq, digest = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    return int(seq), str(digest)


def rows_of(data: bytes, fmt: str) -> tuple[bytes, list[bytes]]:
    """(header, rows) of an export's bytes, each row with its line ending."""
    lines = data.splitlines(keepends=True)
    return b"".join(lines[: HEADER_ROWS[fmt]]), lines[HEADER_ROWS[fmt] :]


def copy_with_manifest(path: Path, name: str, data: bytes) -> Path:
    """A copy of an export, holding `data`, with its manifest beside it."""
    copy = path.with_name(name)
    copy.write_bytes(data)
    shutil.copyfile(manifest_path(path), manifest_path(copy))
    return copy


# --- the manifest ---------------------------------------------------------------------------------


async def test_export_to_a_file_writes_a_manifest_describing_it(decisions: Service, tmp_path: Path) -> None:
    before = dt.datetime.now(dt.UTC)
    paths = await export_all_formats(decisions, tmp_path, "--business", ACME)
    stored = [r for r in stored_decisions(db_path(decisions)) if r["business"] == ACME]
    seq, digest = head_of(db_path(decisions))
    for fmt, path in paths.items():
        manifest = json.loads(manifest_path(path).read_text(encoding="utf-8"))
        data = path.read_bytes()
        assert manifest == manifest | {
            "file": path.name,
            "format": fmt,
            "rows": 3,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "first_record_hash": stored[0]["record_hash"],
            "last_record_hash": stored[-1]["record_hash"],
            "event_count": seq,
            "chain_head": digest,
            "ivr_version": __version__,
        }, fmt
        filters = manifest["filters"]
        assert filters == filters | {"business": ACME, "action": None, "include_demo": True}
        created = dt.datetime.fromisoformat(manifest["created_at"])
        assert created.utcoffset() == dt.timedelta(0) and before <= created <= dt.datetime.now(dt.UTC)


async def test_export_to_standard_output_writes_no_manifest_and_help_says_so(
    decisions: Service, tmp_path: Path
) -> None:
    result, export_help, verify_help = await asyncio.gather(
        ivr_async(decisions.db_url, "export", "-o", "-"),
        ivr_async(decisions.db_url, "export", "--help"),
        ivr_async(decisions.db_url, "verify", "--help"),
    )
    assert result.returncode == 0 and result.stdout.startswith("recorded_at,")
    assert list(tmp_path.glob("*.manifest.json")) == []
    help_text = " ".join(export_help.stdout.split())
    assert "FILE.manifest.json" in help_text and "standard output gets no manifest" in help_text
    assert "--export FILE" in " ".join(verify_help.stdout.split())


async def test_an_empty_export_has_a_manifest_and_verifies(service: Service, tmp_path: Path) -> None:
    path = await export(service, tmp_path / "none.csv", "csv", "--action", "opt_out")
    manifest = read_manifest(manifest_path(path))
    assert (manifest.rows, manifest.first_record_hash, manifest.last_record_hash) == (0, None, None)
    assert (await verify_export(service, path))[0] == 0


async def test_exporting_again_to_a_file_replaces_its_manifest(decisions: Service, tmp_path: Path) -> None:
    path = await export(decisions, tmp_path / "consent.csv", "csv")
    await export(decisions, path, "csv", "--action", "declined")
    assert read_manifest(manifest_path(path)).rows == 1
    assert (await verify_export(decisions, path))[0] == 0


# --- verify --export: exports that match ----------------------------------------------------------


async def test_verify_export_proves_untouched_exports_even_after_the_log_grew(
    decisions: Service, tmp_path: Path
) -> None:
    paths = list((await export_all_formats(decisions, tmp_path)).values())
    for (code, line), path in zip(await verify_all(decisions, paths), paths, strict=True):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert code == 0, line
        assert line.startswith(
            f"ok: export {path} matches the store: 4 rows, sha256 {digest}, taken at record"
        )
    # Later decisions and a late recording of an exported call change nothing about the exports.
    late = await decisions.twilio.call(ACME_NUMBER, "+14155550777", ["1"], recording="none")
    await decisions.twilio.send_recording(late, ACME_NUMBER, "+14155550777")
    assert [code for code, _ in await verify_all(decisions, paths)] == [0, 0, 0]


# --- verify --export: exports that do not match ---------------------------------------------------


def one_byte_edits(data: bytes) -> list[int]:
    """Offsets to edit that cover every kind of byte on every line, not every byte.

    A line is cut into runs of letters and digits (a value, a key, a part of a hash or URL)
    and single other bytes (quotes, commas, colons, braces, spaces, CR, LF). On every line,
    the first byte of each kind of separator is edited; of the runs, each line takes every
    `lines`-th one starting at its own number, so each run position is edited on one line,
    at a byte that moves with the run's number (its first, middle or last byte)."""
    lines = data.splitlines(keepends=True)
    offsets: list[int] = []
    start = 0
    for number, line in enumerate(lines):
        separators: set[int] = set()
        runs: list[tuple[int, int]] = []
        at = 0
        while at < len(line):
            end = at
            while end < len(line) and chr(line[end]).isalnum():
                end += 1
            if end > at:
                runs.append((at, end))
                at = end
                continue
            if line[at] not in separators:
                separators.add(line[at])
                offsets.append(start + at)
            at += 1
        for index in range(number % len(lines), len(runs), len(lines)):
            first, end = runs[index]
            offsets.append(start + first + (index * 7) % (end - first))
        start += len(line)
    return sorted(offsets)


def test_the_one_byte_edits_reach_every_line_run_and_separator() -> None:
    """The sample the sweep edits: every line's separators, each run position on some line."""
    data = b'{"a": "x1", "bb": 22}\n{"a": "y2", "bb": 33}\n'
    offsets = one_byte_edits(data)
    assert {data[o : o + 1] for o in offsets} >= {b"{", b'"', b":", b" ", b",", b"}", b"\n"}
    assert {offset // 22 for offset in offsets} == {0, 1}  # both lines
    runs = ["a", "x1", "bb", "22"]  # the runs of each line, in order: each edited on one of them
    edited = {(o // 22, data[o : o + 1]) for o in offsets if chr(data[o]).isalnum()}
    assert len(edited) == len(runs) and {line for line, _ in edited} == {0, 1}


async def test_every_kind_of_one_byte_edit_of_an_export_is_caught_naming_its_row(
    decisions: Service, tmp_path: Path
) -> None:
    for fmt, path in (await export_all_formats(decisions, tmp_path)).items():
        manifest = read_manifest(manifest_path(path))
        original = path.read_bytes()
        assert len(rows_of(original, fmt)[1]) == 4
        for offset in one_byte_edits(original):
            edited = bytearray(original)
            edited[offset] = original[offset] ^ 0x01 if original[offset] != ord("\n") else ord(" ")
            path.write_bytes(bytes(edited))
            check = await check_export(decisions.store, path, manifest)
            row = original[:offset].count(b"\n") + (1 - HEADER_ROWS[fmt])
            assert check.problem is not None and check.problem.startswith(f"row {row}"), (fmt, offset, check)
        path.write_bytes(original)
        assert (await check_export(decisions.store, path, manifest)).matches


CHANGES = {
    "edit-one-byte": "row 2: its ",
    "delete-row-2": "row 2: it holds record hash",
    "swap-rows-2-3": "row 2: it holds record hash",
    "drop-last-row": "row 4: missing: the export ends before it",
    "add-a-row": "row 5: not in the store",
    "delete-one-byte": "row 3: ",
    "insert-one-byte": "row 1: ",
}


async def test_a_changed_export_fails_the_proof_naming_the_first_row_that_differs(
    decisions: Service, tmp_path: Path
) -> None:
    call_sid = stored_decisions(db_path(decisions))[1]["call_sid"].encode()
    for fmt, path in (await export_all_formats(decisions, tmp_path)).items():
        header, rows = rows_of(path.read_bytes(), fmt)
        changed = {
            "edit-one-byte": [rows[0], rows[1].replace(call_sid, call_sid[:-1] + b"X"), *rows[2:]],
            "delete-row-2": [rows[0], *rows[2:]],
            "swap-rows-2-3": [rows[0], rows[2], rows[1], rows[3]],
            "drop-last-row": rows[:3],
            "add-a-row": [*rows, rows[3]],
            "delete-one-byte": [*rows[:2], rows[2][:10] + rows[2][11:], rows[3]],
            "insert-one-byte": [rows[0][:5] + b"0" + rows[0][5:], *rows[1:]],
        }
        for change, message in CHANGES.items():
            copy = copy_with_manifest(path, f"{change}.{fmt}", header + b"".join(changed[change]))
            check = await check_export(decisions.store, copy, read_manifest(manifest_path(copy)))
            assert check.problem is not None and check.problem.startswith(message), (fmt, change, check)


async def test_verify_export_exits_1_with_one_line_naming_the_row(decisions: Service, tmp_path: Path) -> None:
    path = await export(decisions, tmp_path / "consent.csv", "csv")
    header, rows = rows_of(path.read_bytes(), "csv")
    path.write_bytes(header + rows[0] + rows[2] + rows[1] + rows[3])
    error = one_line_error(await ivr_async(decisions.db_url, "verify", "--export", str(path)), code=1)
    assert error.startswith(
        f"ivr: error: export {path} does not match the store: row 2: it holds record hash"
    )


async def test_verify_export_catches_an_edited_manifest(decisions: Service, tmp_path: Path) -> None:
    path = await export(decisions, tmp_path / "consent.csv", "csv")
    manifest = json.loads(manifest_path(path).read_text(encoding="utf-8"))
    copies = []
    for key, value, message in [
        ("sha256", "0" * 64, "its SHA-256 is not the manifest's"),
        ("rows", 3, "the manifest says 3 rows but the export has 4"),
        ("last_record_hash", "f" * 64, "first or last record hash"),
        ("chain_head", "e" * 64, f"record {manifest['event_count']} has hash"),
        ("event_count", manifest["event_count"] + 1000, "the store has no record"),
        ("filters", manifest["filters"] | {"action": "opt_in"}, "row 2: it holds record hash"),
    ]:
        copy = copy_with_manifest(path, f"{key}.csv", path.read_bytes())
        manifest_path(copy).write_text(json.dumps(manifest | {key: value}), encoding="utf-8")
        check = await check_export(decisions.store, copy, read_manifest(manifest_path(copy)))
        assert check.problem is not None and message in check.problem, (key, check.problem)
        copies.append(copy)
    assert [code for code, _ in await verify_all(decisions, [copies[0], path])] == [1, 0]


async def test_verify_export_without_a_usable_manifest_exits_1(decisions: Service, tmp_path: Path) -> None:
    path = await export(decisions, tmp_path / "consent.csv", "csv")
    cases = [(None, "there is no manifest"), ("{not json", "cannot be read"), ('{"format": "csv"}', "lacks")]
    copies = []
    for number, (manifest_text, _) in enumerate(cases):
        copy = copy_with_manifest(path, f"copy{number}.csv", path.read_bytes())
        if manifest_text is None:
            manifest_path(copy).unlink()
        else:
            manifest_path(copy).write_text(manifest_text, encoding="utf-8")
        with pytest.raises(ManifestError):
            read_manifest(manifest_path(copy))
        copies.append(copy)
    results = await asyncio.gather(
        *(ivr_async(decisions.db_url, "verify", "--export", str(c)) for c in copies)
    )
    for copy, result, (_, message) in zip(copies, results, cases, strict=True):
        error = one_line_error(result, code=1)
        assert f"cannot prove export {copy}" in error and message in error


def test_verify_export_of_a_missing_file_or_with_reanchor_exits_2(db_url: str, tmp_path: Path) -> None:
    assert "nothing.csv" in one_line_error(ivr(db_url, "verify", "--export", str(tmp_path / "nothing.csv")))
    (tmp_path / "some.csv").write_text("x")
    result = ivr(db_url, "verify", "--reanchor", "--export", str(tmp_path / "some.csv"))
    assert "--reanchor and --export" in one_line_error(result)


async def test_verify_export_fails_when_the_store_was_edited_after_the_export(
    decisions: Service, tmp_path: Path
) -> None:
    path = await export(decisions, tmp_path / "consent.csv", "csv")
    with contextlib.closing(sqlite3.connect(db_path(decisions), isolation_level=None, timeout=10)) as conn:
        conn.execute("DROP TRIGGER events_no_update")
        (seq,) = conn.execute("SELECT min(seq) FROM events WHERE kind = 'decision'").fetchone()
        conn.execute(
            "UPDATE events SET body = replace(body, '\"opt_in\"', '\"opt_out\"') WHERE seq = ?", (seq,)
        )
    code, line = await verify_export(decisions, path)
    assert code == 1 and f"chain broken at record {seq}" in line
