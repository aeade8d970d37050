"""Writing decisions out for auditors: CSV and JSON Lines, streamed row by row."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal, TextIO

from consent_store import DecisionRow

ExportFormat = Literal["csv", "jsonl"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("csv", "jsonl")

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


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(value)
    return str(value)


async def write_export(
    rows: AsyncIterator[DecisionRow],
    out: TextIO,
    fmt: ExportFormat,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write every row to `out` in the format; return how many were written."""
    count = 0
    writer = csv.writer(out, lineterminator="\r\n")
    if fmt == "csv":
        writer.writerow(COLUMNS)
    async for row in rows:
        values = row_dict(row)
        if fmt == "csv":
            writer.writerow([_csv_cell(values[c]) for c in COLUMNS])
        else:
            out.write(json.dumps(values, ensure_ascii=False) + "\n")
        count += 1
        if progress is not None and count % 1000 == 0:
            progress(count)
    return count


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
