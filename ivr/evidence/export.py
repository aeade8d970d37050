"""Writing decisions out for auditors: CSV, JSON Lines and consent receipts, streamed in chunks.

Rendering is deterministic (the same decisions always give the same bytes), so an
export can later be proved against the store by rendering it again. Never holds
more than a chunk of rows in memory. The columns, their order, how each is read and
the CSV rule each is written by (a cell a spreadsheet would run as a formula is
neutralised) are declared once, in consent_store.columns: this module takes the CSV
from there and derives JSON Lines keys and receipts from the same declarations. JSON
keeps every value as stored.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

from consent_store import DecisionRow
from consent_store import columns as spec
from consent_store.columns import (
    CSV_HEADER,
    FORMULA_STARTS,
    NAMES,
    CsvChunk,
    csv_cells,
    csv_line,
    csv_written_cells,
    neutralise,
    render_csv,
    restore,
    row_values,
)
from consent_store.writing import utc_iso

__all__ = [
    "COLUMNS",
    "FORMULA_STARTS",
    "csv_cells",
    "csv_line",
    "csv_written_cells",
    "neutralise",
    "restore",
]

ExportFormat = Literal["csv", "jsonl", "receipts"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("csv", "jsonl", "receipts")

# The export's column names, in order: declared with how each is read and written in
# consent_store.columns.
COLUMNS: tuple[str, ...] = NAMES

# Consent receipts (modelled on ISO/IEC TS 27560 and the Kantara consent receipt).
RECEIPT_VERSION = "1"
RECEIPT_CHANNEL = "WhatsApp"
RECEIPT_COLLECTION_METHOD = "IVR (phone keypad)"
# A decision not made on a call (its `channel` column): how it was collected instead.
COLLECTION_METHODS = {
    "whatsapp": "WhatsApp message (keyword)",
    "sms": "SMS (keyword)",
    "email": "reported by another system (email)",
    "web": "reported by another system (web)",
    "other": "reported by another system",
}
CONSENT_STATES = {"opt_in": "given", "declined": "refused", "opt_out": "withdrawn"}
_RECEIPT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:whatsapp-optin-ivr:consent-receipt")
# A receipt's top-level keys in order: the receipt's own, and the sections columns go in
# (each column's `receipt` path); a section no column here names follows, in column order.
_RECEIPT_KEYS = (
    "receipt_id",
    "version",
    "controller",
    "subject",
    "purposes",
    "channel",
    "collection_method",
    "action",
    "consent_state",
    "recorded_at",
    "locale",
    "evidence",
)

CHUNK_ROWS = 1000  # rows rendered, hashed and written at a time
# JSON as json.dumps(value, ensure_ascii=False) writes it: ", " and ": " separators, UTF-8.
_JSON = json.JSONEncoder(ensure_ascii=False)
_LISTS = tuple(c.name for c in spec.COLUMNS if c.kind == "list")


def row_dict(row: DecisionRow) -> dict[str, Any]:
    """One decision as the export's keys, in column order (lists as lists)."""
    values = dict(zip(NAMES, row_values(row), strict=True))
    for name in _LISTS:
        values[name] = list(values[name])
    return values


def render_csv_rows(rows: Sequence[DecisionRow]) -> bytes:
    """`render_rows(rows, "csv")`."""
    return render_csv(rows)


def receipt_id(record_hash: str) -> str:
    """The receipt's id: a name-based UUID of the record, the same on every export."""
    return f"urn:uuid:{uuid.uuid5(_RECEIPT_NAMESPACE, record_hash)}"


def receipt(row: DecisionRow) -> dict[str, Any]:
    """One decision as a consent receipt (see README, "Export formats"): each column's value
    at its `receipt` path, and the receipt's own keys."""
    sections: dict[str, Any] = {
        "receipt_id": receipt_id(row.record_hash),
        "version": RECEIPT_VERSION,
        "channel": RECEIPT_CHANNEL,
        "collection_method": COLLECTION_METHODS.get(row.channel or "", RECEIPT_COLLECTION_METHOD),
        "consent_state": CONSENT_STATES.get(row.action, row.action),
    }
    for column, value in zip(spec.COLUMNS, row_values(row), strict=True):
        *path, key = column.receipt
        place = sections
        for name in path:
            place = place.setdefault(name, {})
        place[key] = list(value) if column.kind == "list" else value
    ordered = {key: sections.pop(key) for key in _RECEIPT_KEYS}
    return ordered | sections


def render_header(fmt: ExportFormat) -> bytes:
    """What an export of this format starts with (the CSV header; nothing for JSON Lines)."""
    return CSV_HEADER if fmt == "csv" else b""


def render_rows(rows: Sequence[DecisionRow], fmt: ExportFormat) -> bytes:
    """The exact bytes these rows take in an export of this format."""
    if fmt == "csv":
        return render_csv(rows)
    encode = _JSON.encode
    as_object = row_dict if fmt == "jsonl" else receipt
    return "".join([encode(as_object(row)) + "\n" for row in rows]).encode()


@dataclass(frozen=True)
class ExportResult:
    """What was written: what a manifest records about the file."""

    rows: int
    size: int
    sha256: str
    first_record_hash: str | None
    last_record_hash: str | None


async def write_export(
    rows: AsyncIterator[DecisionRow],
    out: BinaryIO,
    fmt: ExportFormat,
    progress: Callable[[int], None] | None = None,
) -> ExportResult:
    """Write every row to `out` in the format, chunk by chunk, hashing the bytes written."""
    digest = hashlib.sha256()
    size = count = 0
    first: str | None = None
    last: str | None = None

    def write(data: bytes, chunk: Sequence[DecisionRow] = ()) -> None:
        nonlocal size, count, first, last
        digest.update(data)
        out.write(data)
        size += len(data)
        if chunk:
            count += len(chunk)
            first, last = first or chunk[0].record_hash, chunk[-1].record_hash

    write(render_header(fmt))
    chunk: list[DecisionRow] = []
    async for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK_ROWS:
            write(render_rows(chunk, fmt), chunk)
            chunk = []
            if progress is not None:
                progress(count)
    write(render_rows(chunk, fmt), chunk)
    out.flush()
    return ExportResult(count, size, digest.hexdigest(), first, last)


async def write_csv_chunks(
    chunks: AsyncGenerator[CsvChunk, None],
    out: BinaryIO,
    progress: Callable[[int], None] | None = None,
) -> ExportResult:
    """`write_export` in CSV for rows the store has rendered (its `export_csv_chunks`)."""
    digest = hashlib.sha256()
    header = render_header("csv")
    digest.update(header)
    out.write(header)
    size, count = len(header), 0
    first: str | None = None
    last: str | None = None
    async with contextlib.aclosing(chunks):  # a failed write stops the store's readers at once
        async for chunk in chunks:
            digest.update(chunk.data)  # hashlib lets go of the GIL: the store's reader keeps reading
            out.write(chunk.data)
            size += len(chunk.data)
            count += chunk.rows
            first, last = first or chunk.first_hash, chunk.last_hash
            if progress is not None:
                progress(count)
    out.flush()
    return ExportResult(count, size, digest.hexdigest(), first, last)


def parse_timestamp(value: str, option: str) -> str:
    """An ISO-8601 date or time (naive means UTC) in the store's sortable UTC form."""
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(
            f"{option} {value!r} is not an ISO-8601 date or time (e.g. 2026-01-31T12:00Z)"
        ) from exc
    return utc_iso(parsed)  # naive: taken as UTC


def parse_period(since: str | None, until: str | None, prefix: str = "") -> tuple[str | None, str | None]:
    """`since` and `until` (None or "" means open) in the store's form; ValueError names the bad one.

    `prefix` goes before each name in the message: "--" for the CLI's options, "" for a query.
    """
    low = parse_timestamp(since, f"{prefix}since") if since else None
    high = parse_timestamp(until, f"{prefix}until") if until else None
    return low, high
