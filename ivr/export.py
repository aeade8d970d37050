"""Writing decisions out for auditors: CSV, JSON Lines and consent receipts, streamed in chunks.

Rendering is deterministic (the same decisions always give the same bytes), so an
export can later be proved against the store by rendering it again. Never holds
more than a chunk of rows in memory. CSV cells a spreadsheet would run as a
formula are neutralised; JSON keeps every value as stored.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import re
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

from consent_store import DecisionRow
from consent_store.phone import is_e164_format
from consent_store.sqlite_export import CsvChunk

ExportFormat = Literal["csv", "jsonl", "receipts"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("csv", "jsonl", "receipts")

COLUMNS: tuple[str, ...] = (
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
)

# Consent receipts (modelled on ISO/IEC TS 27560 and the Kantara consent receipt).
RECEIPT_VERSION = "1"
RECEIPT_CHANNEL = "WhatsApp"
RECEIPT_COLLECTION_METHOD = "IVR (phone keypad)"
CONSENT_STATES = {"opt_in": "given", "declined": "refused", "opt_out": "withdrawn"}
_RECEIPT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:whatsapp-optin-ivr:consent-receipt")

# A spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV injection").
FORMULA_STARTS = frozenset("=+-@\t\r")
# ...and a leading quote is what neutralising adds, so it is escaped the same way: every
# CSV cell that starts with a quote had exactly one added, and removing it gives the value.
_QUOTED_STARTS = FORMULA_STARTS | {"'"}
_CSV_SPECIAL = re.compile(r'[",\r\n]')

CHUNK_ROWS = 1000  # rows rendered, hashed and written at a time
# JSON as json.dumps(value, ensure_ascii=False) writes it: ", " and ": " separators, UTF-8.
_JSON = json.JSONEncoder(ensure_ascii=False)


def row_dict(row: DecisionRow) -> dict[str, Any]:
    """One decision as the export's keys (message_types as a list)."""
    return {
        "recorded_at": row.recorded_at,
        "phone": row.phone,
        "business": row.business,
        "action": row.action,
        "message_types": list(row.message_types),
        "call_sid": row.call_sid,
        "digits": row.digits,
        "locale": row.locale,
        "script_version": row.script_version,
        "script_sha256": row.script_sha256,
        "recording_sid": row.recording_sid,
        "recording_url": row.recording_url,
        "recording_duration": row.recording_duration,
        "record_hash": row.record_hash,
    }


def neutralise(cell: str) -> str:
    """A CSV cell a spreadsheet shows as text: a quote before a formula start (or a quote)."""
    return "'" + cell if cell[:1] in _QUOTED_STARTS else cell


def restore(cell: str) -> str:
    """The stored value of a CSV cell written by `neutralise` (the reverse rule)."""
    return cell[1:] if cell[:1] == "'" else cell


def csv_cells(row: DecisionRow) -> tuple[str, ...]:
    """One decision as the text of its CSV cells, in COLUMNS order, neutralised.

    Every text that comes from outside is neutralised; what the store writes itself (the
    time, the action, the hashes, numbers) never starts with a formula character. The
    phone is written as is when it is E.164 (`+` and digits only): a spreadsheet reads
    that as a number, never a formula; any other phone value is neutralised like the rest.
    """
    phone = row.phone or ""
    if phone[:1] in _QUOTED_STARTS and not is_e164_format(phone):
        phone = "'" + phone
    return (
        row.recorded_at,
        phone,
        neutralise(row.business),
        row.action,
        neutralise("; ".join(row.message_types)),
        neutralise(row.call_sid),
        neutralise(row.digits),
        neutralise(row.locale),
        str(row.script_version),
        row.script_sha256,
        neutralise(row.recording_sid or ""),
        neutralise(row.recording_url or ""),
        "" if row.recording_duration is None else str(row.recording_duration),
        row.record_hash,
    )


def _quoted(cell: str) -> str:
    return '"' + cell.replace('"', '""') + '"' if _CSV_SPECIAL.search(cell) else cell


def csv_line(row: DecisionRow) -> str:
    """One decision as a CSV line (RFC 4180: CRLF, a cell quoted if it holds , " CR or LF)."""
    cells = csv_cells(row)
    line = ",".join(cells)
    # Most lines need no quoting at all: one scan of the line says so (csv.writer is 3x slower).
    if '"' in line or "\r" in line or "\n" in line or line.count(",") != len(COLUMNS) - 1:
        line = ",".join(map(_quoted, cells))
    return line + "\r\n"


def csv_written_cells(row: DecisionRow) -> tuple[str, ...]:
    """One decision's CSV cells exactly as `csv_line` writes them (neutralised, then quoted)."""
    return tuple(map(_quoted, csv_cells(row)))


def render_csv_rows(rows: Sequence[DecisionRow]) -> bytes:
    """`render_rows(rows, "csv")`: what the store's CSV fast path falls back to."""
    return render_rows(rows, "csv")


def receipt_id(record_hash: str) -> str:
    """The receipt's id: a name-based UUID of the record, the same on every export."""
    return f"urn:uuid:{uuid.uuid5(_RECEIPT_NAMESPACE, record_hash)}"


def receipt(row: DecisionRow) -> dict[str, Any]:
    """One decision as a consent receipt (see README, "Export formats")."""
    return {
        "receipt_id": receipt_id(row.record_hash),
        "version": RECEIPT_VERSION,
        "controller": {"name": row.business},
        "subject": {"phone": row.phone},
        "purposes": list(row.message_types),
        "channel": RECEIPT_CHANNEL,
        "collection_method": RECEIPT_COLLECTION_METHOD,
        "action": row.action,
        "consent_state": CONSENT_STATES.get(row.action, row.action),
        "recorded_at": row.recorded_at,
        "locale": row.locale,
        "evidence": {
            "call_sid": row.call_sid,
            "digits": row.digits,
            "script_version": row.script_version,
            "script_sha256": row.script_sha256,
            "recording": {
                "sid": row.recording_sid,
                "url": row.recording_url,
                "duration": row.recording_duration,
            },
            "record_hash": row.record_hash,
        },
    }


def render_header(fmt: ExportFormat) -> bytes:
    """What an export of this format starts with (the CSV header; nothing for JSON Lines)."""
    return (",".join(COLUMNS) + "\r\n").encode() if fmt == "csv" else b""


def render_rows(rows: Sequence[DecisionRow], fmt: ExportFormat) -> bytes:
    """The exact bytes these rows take in an export of this format."""
    if fmt == "csv":
        return "".join(map(csv_line, rows)).encode()
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
    """`write_export` in CSV for rows the store has already rendered (SQLiteStore.export_csv)."""
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
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
