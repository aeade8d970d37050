"""Proving an export file against the store (`ivr verify --export FILE`).

The store renders the same decisions again (the manifest's filters, read through the
record that was the chain head at export time, so later records change nothing) and
the bytes are compared with the file's, row by row; then the manifest's chain head,
SHA-256, row count and first/last record hashes are checked. The file and the store
are both read forward a chunk at a time. A CSV export is first compared with the lines
the store builds (`export_csv_chunks`: SQLite writes them itself, fast); only if
something differs is it read again row by row, to say which row and how. Never writes
anything.

An export written before some column existed holds a prefix of today's columns (they are
only ever appended): its columns are read from the file (ivr.evidence.export_columns),
must be the manifest's when it lists them, and the store's decisions are rendered again
with exactly those columns.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

from consent_store import ConsentStore, DecisionRow
from ivr.evidence.export import (
    CHUNK_ROWS,
    COLUMNS,
    ExportFormat,
    csv_cells,
)
from ivr.evidence.export_columns import (
    file_columns,
    header_for,
    prefix_length,
    render_rows_with,
)
from ivr.evidence.manifest import ExportManifest
from ivr.exceptions import ColumnsError, ExportMismatch, ManifestError

_DIAGNOSIS_BYTES = 1 << 16  # how far past a differing row is read to say what differs


@dataclass(frozen=True)
class ExportCheck:
    """The outcome: the rows compared, the file's SHA-256, and the first difference if any."""

    rows: int
    sha256: str | None  # None when a difference stopped the comparison
    problem: str | None = None

    @property
    def matches(self) -> bool:
        return self.problem is None


class _HashingReader:
    """The export file read forward, every byte read also fed to its SHA-256."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._digest = hashlib.sha256()

    def read(self, size: int) -> bytes:
        data = self._handle.read(size)
        self._digest.update(data)
        return data

    def sha256_to_end(self) -> str:
        while self.read(1 << 20):
            pass
        return self._digest.hexdigest()


def _short(digest: object) -> str:
    return f"{digest[:12]}..." if isinstance(digest, str) else repr(digest)


def _parsed(text: str, fmt: ExportFormat, count: int) -> dict[str, Any]:
    """The first row of `text` as column -> value (CSV cells as text, JSON as parsed)."""
    if fmt == "csv":
        cells = next(csv.reader(io.StringIO(text, newline="")))
        if len(cells) != count:
            raise ValueError(f"{len(cells)} cells where the export has {count}")
        return dict(zip(COLUMNS[:count], cells, strict=True))
    parsed = json.loads(text.split("\n", 1)[0])
    if not isinstance(parsed, dict):
        raise ValueError("not a JSON object")
    return parsed


def _expected(row: DecisionRow, fmt: ExportFormat, count: int) -> dict[str, Any]:
    if fmt == "csv":
        return dict(zip(COLUMNS[:count], csv_cells(row)[:count], strict=True))
    expected: dict[str, Any] = json.loads(render_rows_with([row], fmt, count))
    return expected


def _record_hash(values: dict[str, Any], fmt: ExportFormat) -> Any:
    if fmt == "receipts":
        evidence = values.get("evidence")
        return evidence.get("record_hash") if isinstance(evidence, dict) else None
    return values.get("record_hash")


def describe_difference(found: bytes, row: DecisionRow, fmt: ExportFormat, count: int = len(COLUMNS)) -> str:
    """What is wrong with the file's bytes where `row` should be (`found` starts there)."""
    if not found:
        return "missing: the export ends before it, the store has more rows"
    try:
        values = _parsed(found.decode("utf-8", errors="replace"), fmt, count)
    except (csv.Error, StopIteration, ValueError) as exc:
        return f"it is not a valid {'CSV' if fmt == 'csv' else 'JSON'} row ({exc})"
    expected = _expected(row, fmt, count)
    if _record_hash(values, fmt) != row.record_hash:
        return (
            f"it holds record hash {_short(_record_hash(values, fmt))} where the store's decision is "
            f"{_short(row.record_hash)} (a row was deleted, added, moved or edited)"
        )
    missing = [key for key in expected if key not in values]
    if missing:
        return f"it lacks {', '.join(missing)}, which the export's rows hold (see its first row)"
    added = [key for key in values if key not in expected]
    if added:
        return f"it has {', '.join(map(repr, added))}, which the export's rows lack (see its first row)"
    differing = [key for key in expected if values[key] != expected[key]]
    if differing:
        verb = "differs" if len(differing) == 1 else "differ"
        return f"its {', '.join(differing)} {verb} from the store's record"
    if list(values) != list(expected):
        return "its keys are not in the export's order"
    return "its bytes differ from the export as written (quoting, spacing or line ending changed)"


def _compare_chunk(
    file: _HashingReader, rows: list[DecisionRow], done: int, fmt: ExportFormat, count: int
) -> None:
    """Raise ExportMismatch naming the first of these rows whose bytes in the file differ."""
    expected = render_rows_with(rows, fmt, count)
    found = file.read(len(expected))
    if found == expected:
        return
    offset = 0
    for number, row in enumerate(rows, start=done + 1):
        one = render_rows_with([row], fmt, count)
        if found[offset : offset + len(one)] != one:
            tail = found[offset:] + file.read(_DIAGNOSIS_BYTES)
            raise ExportMismatch(f"row {number}: {describe_difference(tail, row, fmt, count)}")
        offset += len(one)


def _check_head(manifest: ExportManifest, seq: int, digest: str | None) -> None:
    if digest is None:
        raise ExportMismatch(
            f"the store has no record {seq}, the chain head when the export was taken "
            "(its tail was deleted, or this is another database)"
        )
    if digest != manifest.chain_head:
        raise ExportMismatch(
            f"record {seq} has hash {_short(digest)} but was {_short(manifest.chain_head)} when the "
            "export was taken (the chain was rewritten since, or the manifest edited)"
        )


def _check_manifest(manifest: ExportManifest, rows: int, first: str | None, last: str | None) -> None:
    """The file matches the store: now the manifest must describe it."""
    if manifest.rows != rows:
        raise ExportMismatch(f"the manifest says {manifest.rows} rows but the export has {rows}")
    if (manifest.first_record_hash, manifest.last_record_hash) != (first, last):
        raise ExportMismatch("the manifest's first or last record hash is not the export's")


async def check_export(
    store: ConsentStore,
    path: Path,
    manifest: ExportManifest,
    progress: Callable[[int], None] | None = None,
) -> ExportCheck:
    """Compare the export at `path` with the store, as its manifest describes it."""
    try:
        count = export_column_count(path, manifest)
    except ColumnsError as exc:
        return ExportCheck(0, None, str(exc))
    if manifest.format == "csv" and count == len(COLUMNS):
        matched = await _csv_matches_whole(store, path, manifest, progress)
        if matched is not None:
            return matched
    return await _check_row_by_row(store, path, manifest, progress, count)


def export_column_count(path: Path, manifest: ExportManifest) -> int:
    """How many of today's columns the export holds (a prefix: see ivr.evidence.export_columns),
    read from the file and held to the manifest's list when it has one; ColumnsError if neither
    a prefix of today's columns nor the manifest's."""
    with path.open("rb") as handle:
        found = file_columns(handle, manifest.format)
    where = "row 0 (the header)" if manifest.format == "csv" else "row 1"
    listed = manifest.columns
    if found is None:  # a JSON export without rows: only the manifest can say
        return prefix_length(tuple(listed) if listed is not None else COLUMNS, "the manifest's columns")
    count = prefix_length(found, where)
    if listed is not None and list(found) != listed:
        place = next(
            (i for i, (a, b) in enumerate(zip(found, listed, strict=False)) if a != b),
            min(len(found), len(listed)),
        )
        in_file = repr(found[place][:40]) if place < len(found) else "nothing"
        in_manifest = repr(listed[place][:40]) if place < len(listed) else "nothing"
        raise ColumnsError(
            f"{where}: it holds {len(found)} columns where the manifest lists {len(listed)}: column "
            f"{place + 1} is {in_file} in the file and {in_manifest} in the manifest"
        )
    return count


async def _csv_matches_whole(
    store: ConsentStore, path: Path, manifest: ExportManifest, progress: Callable[[int], None] | None
) -> ExportCheck | None:
    """The check of a CSV export against the store's own lines (`export_csv_chunks`), chunk
    by chunk; None at the first difference, which the row-by-row check then names."""
    done = 0
    first: str | None = None
    last: str | None = None
    with path.open("rb") as handle:
        file = _HashingReader(handle)
        header = header_for("csv", len(COLUMNS))
        if file.read(len(header)) != header:
            return None
        try:
            chunks = store.export_csv_chunks(
                replace(manifest.export_filter(), through_seq=manifest.event_count),
                on_snapshot=lambda seq, digest: _check_head(manifest, seq, digest),
            )
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    if file.read(len(chunk.data)) != chunk.data:
                        return None
                    done, first, last = done + chunk.rows, first or chunk.first_hash, chunk.last_hash
                    if progress is not None:
                        progress(done)
            if file.read(1):
                return None
            _check_manifest(manifest, done, first, last)
        except (ExportMismatch, ManifestError):
            return None
        return _verdict(manifest, done, file.sha256_to_end())


def _verdict(manifest: ExportManifest, rows: int, sha256: str) -> ExportCheck:
    """The outcome for a file whose rows all match the store."""
    if sha256 != manifest.sha256:
        problem = "the file matches the store but its SHA-256 is not the manifest's (the manifest was edited)"
        return ExportCheck(rows, sha256, problem)
    return ExportCheck(rows, sha256)


async def _check_row_by_row(
    store: ConsentStore,
    path: Path,
    manifest: ExportManifest,
    progress: Callable[[int], None] | None,
    count: int,
) -> ExportCheck:
    """The check from DecisionRows, rendered again with the export's first `count` columns; at a
    difference, says which row and how."""
    fmt = manifest.format
    done = 0
    first: str | None = None
    last: str | None = None
    with path.open("rb") as handle:
        file = _HashingReader(handle)
        try:
            where = manifest.export_filter()
            header = header_for(fmt, count)
            if file.read(len(header)) != header:
                raise ExportMismatch("row 0 (the header): it is not the export's column names")
            rows = store.export_decisions(
                replace(where, through_seq=manifest.event_count),
                on_snapshot=lambda seq, digest: _check_head(manifest, seq, digest),
            )
            chunk: list[DecisionRow] = []
            async with contextlib.aclosing(rows):
                async for row in rows:
                    chunk.append(row)
                    if len(chunk) == CHUNK_ROWS:
                        _compare_chunk(file, chunk, done, fmt, count)
                        done, first, last = done + len(chunk), first or chunk[0].record_hash, row.record_hash
                        chunk.clear()
                        if progress is not None:
                            progress(done)
            if chunk:
                _compare_chunk(file, chunk, done, fmt, count)
                done, first, last = done + len(chunk), first or chunk[0].record_hash, chunk[-1].record_hash
            if file.read(1):
                raise ExportMismatch(
                    f"row {done + 1}: not in the store (the export has more rows than the store "
                    f"holds for its filters up to record {manifest.event_count})"
                )
            _check_manifest(manifest, done, first, last)
        except (ExportMismatch, ManifestError) as exc:
            return ExportCheck(done, None, str(exc))
        return _verdict(manifest, done, file.sha256_to_end())
