"""Old exports keep verifying: an export written before a column existed is proved against the store.

Columns are only ever appended (consent_store.columns), so an export from an older column
set holds a prefix of today's. The old exports here are made from today's by dropping the
trailing columns (CSV cells, JSON keys, a receipt's places for them), with a version 1
manifest (no column list), as the older code wrote them. Hostile headers (renamed,
reordered, injected, missing or doubled columns), a manifest whose column list is not the
file's, and oversized or binary first lines are refused with one line naming the problem.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from consent_store import columns as spec
from consent_store.columns import NAMES
from ivr.evidence.export_check import check_export
from ivr.evidence.manifest import MANIFEST_VERSION, manifest_path, read_manifest
from ivr.exceptions import ManifestError
from tests.conftest import ACME_NUMBER, BILINGUAL_NUMBER, CALLER, Service
from tests.test_cli import ivr_async, one_line_error

FORMATS = ("csv", "jsonl", "receipts")
# Column sets the export has had: before the caller-identity columns (record_hash last),
# before `simulated`, before `channel`, before `recording_sha256`.
OLD_COUNTS = (
    NAMES.index("record_hash") + 1,
    NAMES.index("simulated"),
    NAMES.index("channel"),
    len(NAMES) - 1,
)


@pytest.fixture
async def decisions(service: Service) -> Service:
    """Three decisions: an opt-in, a decline (Spanish script), an opt-out."""
    await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
    await service.twilio.call(BILINGUAL_NUMBER, "+34600000333", ["1", "1"])
    await service.twilio.call(ACME_NUMBER, CALLER, ["9"])
    return service


async def export(service: Service, path: Path, fmt: str) -> Path:
    result = await ivr_async(service.db_url, "export", "--format", fmt, "-o", str(path))
    assert result.returncode == 0, result.stderr
    return path


async def today(service: Service, directory: Path) -> dict[str, Path]:
    paths = {fmt: directory / f"today.{fmt}" for fmt in FORMATS}
    await asyncio.gather(*(export(service, path, fmt) for fmt, path in paths.items()))
    return paths


def _csv_line(cells: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(cells)
    return out.getvalue()


def _old_receipt(receipt: dict[str, Any], count: int) -> dict[str, Any]:
    """A receipt as written when only the first `count` columns existed."""
    if count <= NAMES.index("channel"):
        receipt["collection_method"] = "IVR (phone keypad)"  # before channels, every decision was a call
    for column in spec.COLUMNS[count:]:
        *path, key = column.receipt
        place = receipt
        for name in path:
            place = place[name]
        del place[key]
    if not receipt.get("caller_identity", True):
        del receipt["caller_identity"]
    return receipt


def drop_columns(data: bytes, fmt: str, count: int) -> bytes:
    """Today's export bytes with only the first `count` columns, as an older version wrote them."""
    text = data.decode("utf-8")
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(text, newline="")))
        return "".join(_csv_line(row[:count]) for row in rows).encode()
    lines = []
    for line in text.splitlines():
        parsed = json.loads(line)
        if fmt == "jsonl":
            parsed = dict(list(parsed.items())[:count])
        else:
            parsed = _old_receipt(parsed, count)
        lines.append(json.dumps(parsed, ensure_ascii=False) + "\n")
    return "".join(lines).encode()


def write_old(today_path: Path, name: str, data: bytes, manifest_data: bytes | None = None) -> Path:
    """`data` under `name` beside today's export, with a version 1 manifest (no column list)
    describing `manifest_data` (default: `data` itself)."""
    path = today_path.with_name(name)
    path.write_bytes(data)
    described = data if manifest_data is None else manifest_data
    manifest = json.loads(manifest_path(today_path).read_text(encoding="utf-8"))
    del manifest["columns"], manifest["columns_version"]
    manifest |= {
        "file": name,
        "bytes": len(described),
        "sha256": hashlib.sha256(described).hexdigest(),
        "manifest_version": 1,
    }
    manifest_path(path).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return path


async def problem_of(service: Service, path: Path) -> str | None:
    check = await check_export(service.store, path, read_manifest(manifest_path(path)))
    return check.problem


# --- the manifest records the columns ----------------------------------------------------------


async def test_the_manifest_records_the_exports_columns_and_the_spec_version(
    decisions: Service, tmp_path: Path
) -> None:
    for path in (await today(decisions, tmp_path)).values():
        manifest = json.loads(manifest_path(path).read_text(encoding="utf-8"))
        assert manifest["columns"] == list(NAMES)
        assert manifest["columns_version"] == len(NAMES)
        assert manifest["manifest_version"] == MANIFEST_VERSION == 2


# --- old exports verify, and edits of them do not ------------------------------------------------


async def test_exports_from_every_older_column_set_verify_and_a_changed_cell_fails(
    decisions: Service, tmp_path: Path
) -> None:
    paths = await today(decisions, tmp_path)
    for fmt, path in paths.items():
        data = path.read_bytes()
        assert drop_columns(data, fmt, len(NAMES)) == data, fmt  # the way old ones are made is faithful
        for count in OLD_COUNTS:
            old = drop_columns(data, fmt, count)
            assert old != data
            old_path = write_old(path, f"old{count}.{fmt}", old)
            assert await problem_of(decisions, old_path) is None, (fmt, count)
            field = "controller" if fmt == "receipts" else "business"  # a receipt's name for it
            # The business of row 2 changed in the old export: caught, naming the row and the column.
            edited = old.replace(b"Tienda Sol", b"Tienda Soy", 1)
            assert edited != old
            edited_path = write_old(path, f"edited{count}.{fmt}", edited, manifest_data=old)
            problem = await problem_of(decisions, edited_path)
            assert problem is not None and problem.startswith("row 2: ") and field in problem, (
                fmt,
                count,
                problem,
            )
            # A dropped column's key added back to a later row is caught too, naming it.
            if fmt == "jsonl":
                lines = old.split(b"\n")
                lines[1] = lines[1][:-1] + f', "{NAMES[count]}": null}}'.encode()
                grown = write_old(path, f"grown{count}.jsonl", b"\n".join(lines), manifest_data=old)
                problem = await problem_of(decisions, grown)
                assert problem is not None and problem.startswith("row 2: "), (count, problem)
                assert NAMES[count] in problem


async def test_verify_export_proves_an_old_csv_export_on_the_command_line(
    decisions: Service, tmp_path: Path
) -> None:
    path = await export(decisions, tmp_path / "today.csv", "csv")
    old = write_old(path, "old.csv", drop_columns(path.read_bytes(), "csv", OLD_COUNTS[0]))
    result = await ivr_async(decisions.db_url, "verify", "--export", str(old))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"ok: export {old} matches the store: 3 rows")


async def test_a_jsonl_line_with_fewer_keys_than_the_first_is_refused_naming_its_row(
    decisions: Service, tmp_path: Path
) -> None:
    path = await export(decisions, tmp_path / "today.jsonl", "jsonl")
    lines = path.read_bytes().splitlines(keepends=True)
    shorter = drop_columns(lines[1], "jsonl", OLD_COUNTS[-1])
    mixed = write_old(path, "mixed.jsonl", lines[0] + shorter + lines[2])
    problem = await problem_of(decisions, mixed)
    assert problem is not None and problem.startswith("row 2: ") and "recording_sha256" in problem


# --- hostile headers -------------------------------------------------------------------------


def with_header(data: bytes, names: list[str]) -> bytes:
    return (",".join(names) + "\r\n").encode() + data.split(b"\r\n", 1)[1]


async def test_a_renamed_reordered_injected_missing_or_doubled_column_is_refused_naming_it(
    decisions: Service, tmp_path: Path
) -> None:
    path = await export(decisions, tmp_path / "today.csv", "csv")
    data = path.read_bytes()
    names = list(NAMES)
    cases = {
        "renamed": (names[:1] + ["phone_number"] + names[2:], "unknown column 'phone_number' at position 2"),
        "reordered": (
            names[:1] + [names[2], names[1]] + names[3:],
            "lacks the column 'phone' before 'business'",
        ),
        "swapped": ([names[1], names[0]] + names[2:], "lacks the column 'recorded_at' before 'phone'"),
        "late": (names[:3] + names[4:] + [names[3]], "lacks the column 'action' before 'message_types'"),
        "injected": (names[:5] + ["evil"] + names[5:], "unknown column 'evil' at position 6"),
        "appended": (names + ["extra"], f"unknown column 'extra' at position {len(names) + 1}"),
        "missing": (names[:6] + names[7:], "lacks the column 'digits' before 'locale'"),
        "doubled": (names + [names[0]], "the column 'recorded_at' twice"),
        "truncated": (names[:5], None),  # a prefix: the header is fine, the rows are not
        "empty": ([""], "it holds no column names"),
    }
    for case, (header, message) in cases.items():
        bad = write_old(path, f"{case}.csv", with_header(data, header))
        problem = await problem_of(decisions, bad)
        assert problem is not None, case
        if message is None:
            assert problem.startswith("row 1: "), (case, problem)
        else:
            assert problem.startswith("row 0 (the header): ") and message in problem, (case, problem)
    reordered = write_old(path, "on-the-command-line.csv", with_header(data, cases["reordered"][0]))
    error = one_line_error(await ivr_async(decisions.db_url, "verify", "--export", str(reordered)), code=1)
    assert error == (
        f"ivr: error: export {reordered} does not match the store: row 0 (the header): it lacks the column "
        "'phone' before 'business' (columns are only ever appended: none is dropped from the middle)"
    )


async def test_json_exports_with_renamed_or_reordered_keys_are_refused(
    decisions: Service, tmp_path: Path
) -> None:
    path = await export(decisions, tmp_path / "today.jsonl", "jsonl")
    first, rest = path.read_bytes().split(b"\n", 1)
    parsed = json.loads(first)
    renamed = {("who" if key == "phone" else key): value for key, value in parsed.items()}
    reordered = {"phone": parsed["phone"]} | parsed
    for case, changed, message in [
        ("renamed", renamed, "unknown column 'who' at position 2"),
        ("reordered", reordered, "lacks the column 'recorded_at' before 'phone'"),
    ]:
        bad = write_old(
            path, f"{case}.jsonl", json.dumps(changed, ensure_ascii=False).encode() + b"\n" + rest
        )
        problem = await problem_of(decisions, bad)
        assert problem is not None and problem.startswith("row 1: ") and message in problem, (case, problem)


# --- the manifest's column list -------------------------------------------------------------


async def test_a_manifest_listing_other_columns_than_the_files_header_is_refused(
    decisions: Service, tmp_path: Path
) -> None:
    paths = await today(decisions, tmp_path)
    count = OLD_COUNTS[0]
    for fmt, path in paths.items():
        data = path.read_bytes()
        manifest = json.loads(manifest_path(path).read_text(encoding="utf-8"))
        # Today's file, a manifest claiming the old column set.
        manifest_path(path).write_text(
            json.dumps(manifest | {"columns": list(NAMES[:count]), "columns_version": count}),
            encoding="utf-8",
        )
        problem = await problem_of(decisions, path)
        where = "row 0 (the header)" if fmt == "csv" else "row 1"
        assert problem == (
            f"{where}: it holds {len(NAMES)} columns where the manifest lists {count}: column {count + 1} "
            f"is {NAMES[count]!r} in the file and nothing in the manifest"
        ), fmt
        # An old file, a manifest claiming today's columns.
        old = write_old(path, f"old.{fmt}", drop_columns(data, fmt, count))
        old_manifest = json.loads(manifest_path(old).read_text(encoding="utf-8"))
        manifest_path(old).write_text(
            json.dumps(old_manifest | {"columns": list(NAMES), "columns_version": len(NAMES)}),
            encoding="utf-8",
        )
        problem = await problem_of(decisions, old)
        assert problem is not None and f"where the manifest lists {len(NAMES)}" in problem, (fmt, problem)
        # Same length, one name changed in the manifest.
        listed = list(NAMES)
        listed[3] = "deed"
        manifest_path(path).write_text(json.dumps(manifest | {"columns": listed}), encoding="utf-8")
        problem = await problem_of(decisions, path)
        assert (
            problem is not None and "column 4 is 'action' in the file and 'deed' in the manifest" in problem
        )
        manifest_path(path).write_text(json.dumps(manifest), encoding="utf-8")
        assert await problem_of(decisions, path) is None


async def test_a_manifest_whose_columns_are_malformed_cannot_be_read(
    decisions: Service, tmp_path: Path
) -> None:
    path = await export(decisions, tmp_path / "today.csv", "csv")
    manifest = json.loads(manifest_path(path).read_text(encoding="utf-8"))
    for changed, message in [
        ({"columns": "recorded_at,phone"}, "not a list of names"),
        ({"columns": [1, 2]}, "not a list of names"),
        ({"columns_version": len(NAMES) + 1}, "columns_version"),
        ({"columns_version": "22"}, "columns_version"),
    ]:
        manifest_path(path).write_text(json.dumps(manifest | changed), encoding="utf-8")
        with pytest.raises(ManifestError, match=message):
            read_manifest(manifest_path(path))


async def test_an_empty_json_export_takes_its_columns_from_the_manifest(
    service: Service, tmp_path: Path
) -> None:
    path = await export(service, tmp_path / "empty.jsonl", "jsonl")
    assert path.read_bytes() == b""
    assert await problem_of(service, path) is None
    manifest = json.loads(manifest_path(path).read_text(encoding="utf-8"))
    manifest_path(path).write_text(json.dumps(manifest | {"columns": ["phone"], "columns_version": 1}))
    assert "the manifest's columns: it lacks the column 'recorded_at'" in (
        await problem_of(service, path) or ""
    )


# --- oversized and binary first lines ---------------------------------------------------------


async def test_an_oversized_or_binary_first_line_gets_one_clear_line(
    decisions: Service, tmp_path: Path
) -> None:
    paths = await today(decisions, tmp_path)
    csv_path, jsonl_path = paths["csv"], paths["jsonl"]
    cases = [
        (
            csv_path,
            "huge.csv",
            b"recorded_at," + b"x" * (1 << 17),
            "row 0 (the header): it is longer than 65536",
        ),
        (
            csv_path,
            "binary.csv",
            b"\x89PNG\r\n\x1a\n\xff\xfe" + bytes(range(256)),
            "row 0 (the header): it is not",
        ),
        (csv_path, "nul.csv", b"recorded_at,\x00\x00\r\n", "row 0 (the header): it has an unknown column"),
        (
            jsonl_path,
            "huge.jsonl",
            b'{"recorded_at": "' + b"x" * (1 << 21),
            "row 1: it is longer than 1048576",
        ),
        (jsonl_path, "binary.jsonl", b"\xff\xd8\xff\xe0\x00\x10JFIF\n", "row 1: it is not UTF-8 text"),
        (jsonl_path, "array.jsonl", b"[1, 2]\n", "row 1: it is not a JSON object"),
        (jsonl_path, "garbage.jsonl", b"{recorded_at\n", "row 1: it is not a JSON object"),
    ]
    bad = [write_old(path, name, data) for path, name, data, _ in cases]
    for path, (_, _, _, message) in zip(bad, cases, strict=True):
        problem = await problem_of(decisions, path)
        assert problem is not None and problem.startswith(message), (path.name, problem)
    results = await asyncio.gather(
        *(ivr_async(decisions.db_url, "verify", "--export", str(bad[i])) for i in (0, 1, 3))
    )
    for result, i in zip(results, (0, 1, 3), strict=True):
        error = one_line_error(result, code=1)
        assert error.startswith(f"ivr: error: export {bad[i]} does not match the store: {cases[i][3]}")
        assert len(error) < 400
