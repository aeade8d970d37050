"""The manifest written beside an export file: what it holds and where the chain stood.

`FILE.manifest.json` records the format, the filters, the row count, the SHA-256 of
the file's bytes, the first and last record hashes, the store's chain head at
export time and the export's columns (names in order, and how many the spec had), so
`ivr verify --export FILE` can prove the file against the store.
Never written for an export to standard output.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consent_store import ExportFilter
from consent_store.columns import NAMES
from consent_store.writing import utc_now
from ivr.evidence.export import EXPORT_FORMATS, ExportFormat, ExportResult
from ivr.exceptions import ManifestError

MANIFEST_SUFFIX = ".manifest.json"
# 2: records `columns` and `columns_version`; a version 1 manifest lacks them (its export's
# columns are then read from the file alone).
MANIFEST_VERSION = 2


def manifest_path(export_path: Path) -> Path:
    return export_path.with_name(export_path.name + MANIFEST_SUFFIX)


@dataclass(frozen=True)
class ExportManifest:
    file: str  # the export's file name, without its directory
    format: ExportFormat
    filters: dict[str, Any]  # the ExportFilter's fields
    rows: int
    bytes: int
    sha256: str
    first_record_hash: str | None
    last_record_hash: str | None
    event_count: int  # records in the chain when the export was read
    chain_head: str  # the hash of record `event_count` (the genesis hash for 0)
    created_at: str
    ivr_version: str
    manifest_version: int = MANIFEST_VERSION
    # The export's column names, in order (None in a version 1 manifest). Columns are only ever
    # appended, so an older export's are a prefix of today's.
    columns: list[str] | None = None
    # How many columns the column spec had when the export was written (its version: columns
    # are only ever appended, so the count names the set); None in a version 1 manifest.
    columns_version: int | None = None

    @classmethod
    def for_export(
        cls,
        path: Path,
        fmt: ExportFormat,
        where: ExportFilter,
        result: ExportResult,
        head: tuple[int, str],
        ivr_version: str,
    ) -> ExportManifest:
        return cls(
            file=path.name,
            format=fmt,
            # The pin is event_count below, not a filter: the manifest's filters stay as they were.
            filters={k: v for k, v in dataclasses.asdict(where).items() if k != "through_seq"},
            rows=result.rows,
            bytes=result.size,
            sha256=result.sha256,
            first_record_hash=result.first_record_hash,
            last_record_hash=result.last_record_hash,
            event_count=head[0],
            chain_head=head[1],
            created_at=utc_now(),
            ivr_version=ivr_version,
            columns=list(NAMES),
            columns_version=len(NAMES),
        )

    def export_filter(self) -> ExportFilter:
        """The filter the export was read with."""
        try:
            return ExportFilter(**self.filters)
        except TypeError as exc:
            raise ManifestError(f"its filters are not export filters ({exc})") from exc


def write_manifest(path: Path, manifest: ExportManifest) -> None:
    """Write the manifest whole or not at all (a temporary file, then a rename)."""
    os.replace(staged_manifest(path, manifest), path)


def staged_manifest(path: Path, manifest: ExportManifest, mode: int = 0o600) -> Path:
    """The manifest written whole and synced beside `path` under a temporary name, for the
    caller to rename onto `path` (an export renames its file, then this, back to back)."""
    temporary = path.with_name(path.name + ".tmp")
    text = json.dumps(dataclasses.asdict(manifest), indent=2, ensure_ascii=False) + "\n"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with open(fd, "w", encoding="utf-8") as out:
        os.fchmod(fd, mode)  # an old temporary file keeps its mode otherwise
        out.write(text)
        out.flush()
        os.fsync(fd)
    return temporary


def read_manifest(path: Path) -> ExportManifest:
    """The manifest at `path`; ManifestError naming what is wrong with it."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ManifestError(
            f"there is no manifest {path} beside it (only exports written with -o FILE have one)"
        ) from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ManifestError(f"its manifest {path} cannot be read ({exc})") from exc
    if not isinstance(raw, dict):
        raise ManifestError(f"its manifest {path} is not a JSON object")
    names = {field.name for field in dataclasses.fields(ExportManifest)}
    missing = sorted(names - set(raw) - {"manifest_version", "columns", "columns_version"})
    if missing or set(raw) - names:
        problem = f"lacks {', '.join(missing)}" if missing else f"has unknown keys {sorted(set(raw) - names)}"
        raise ManifestError(f"its manifest {path} {problem}")
    manifest = ExportManifest(**raw)
    if manifest.format not in EXPORT_FORMATS or not isinstance(manifest.filters, dict):
        raise ManifestError(f"its manifest {path} names an unknown format or filters")
    if not isinstance(manifest.event_count, int) or not isinstance(manifest.rows, int):
        raise ManifestError(f"its manifest {path} has a row or record count that is not a number")
    columns = manifest.columns
    if columns is not None and (
        not isinstance(columns, list) or not all(isinstance(name, str) for name in columns)
    ):
        raise ManifestError(f"its manifest {path} has columns that are not a list of names")
    if manifest.columns_version is not None and (
        not isinstance(manifest.columns_version, int) or manifest.columns_version != len(columns or ())
    ):
        raise ManifestError(f"its manifest {path} has a columns_version that is not its number of columns")
    return manifest
