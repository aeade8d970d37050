"""Which columns an export holds, and decisions rendered with exactly those columns.

The export's columns are a public contract: existing ones keep their names and places,
new ones are only ever appended (consent_store.columns). So an export written before a
column existed holds a prefix of today's columns, and `ivr verify --export` proves it
by rendering the store's decisions again with that prefix. Anything else in a header
(an unknown, renamed, reordered or missing column) is refused, naming the column.

The columns are read from the file itself: the CSV header, the first JSON Lines
object's keys, or which columns' places the first consent receipt holds. The first
line is read with a bound, so an oversized or binary file gets one clear refusal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, BinaryIO

from consent_store import DecisionRow
from consent_store import columns as spec
from consent_store.columns import NAMES, csv_written_cells, row_values
from ivr.evidence.export import (
    RECEIPT_COLLECTION_METHOD,
    ExportFormat,
    receipt,
    render_header,
    render_rows,
)
from ivr.exceptions import ColumnsError

# Today's header is a few hundred bytes; a first line longer than this is not an export's.
MAX_HEADER_BYTES = 1 << 16
# A JSON row holds text from outside (caller names, business names) but nothing near this.
MAX_FIRST_ROW_BYTES = 1 << 20
_CHANNEL = NAMES.index("channel")


def _shown(name: str) -> str:
    """A column name from the file, shown safely on one line."""
    return repr(name[:40] + ("..." if len(name) > 40 else ""))


def prefix_length(found: Sequence[str], where: str) -> int:
    """How many of today's columns `found` holds: it must be NAMES' first len(found), in order.

    Raises ColumnsError naming the first column that is unknown, out of place or missing."""
    if not found:
        raise ColumnsError(f"{where}: it holds no column names")
    for place, name in enumerate(found):
        if place < len(NAMES) and name == NAMES[place]:
            continue
        if name not in NAMES:
            instead = f" (where today's is {NAMES[place]!r})" if place < len(NAMES) else ""
            at = f"at position {place + 1}{instead}"
            raise ColumnsError(f"{where}: it has an unknown column {_shown(name)} {at}")
        if name in found[:place]:
            raise ColumnsError(f"{where}: it has the column {name!r} twice")
        if NAMES.index(name) > place:
            raise ColumnsError(
                f"{where}: it lacks the column {NAMES[place]!r} before {name!r} "
                "(columns are only ever appended: none is dropped from the middle)"
            )
        raise ColumnsError(
            f"{where}: it has the column {name!r} at position {place + 1}, not {NAMES.index(name) + 1} "
            "(the columns' order is fixed)"
        )
    return len(found)


def _first_line(handle: BinaryIO, limit: int, what: str) -> bytes:
    """The file's first line (without its line ending), read with a bound; b"" if empty."""
    data = handle.readline(limit + 1)
    if len(data) > limit and not data.endswith(b"\n"):
        raise ColumnsError(f"{what}: it is longer than {limit} bytes: this is not an export's")
    return data.rstrip(b"\r\n")


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = f"{what}: it is not UTF-8 text (byte {exc.start + 1}): this is not an export's"
        raise ColumnsError(problem) from exc


def _receipt_columns(first: dict[str, Any]) -> list[str]:
    """Which columns' places (their `receipt` path) this receipt holds, in column order."""
    present = []
    for column in spec.COLUMNS:
        place: Any = first
        for key in column.receipt:
            place = place.get(key, _ABSENT) if isinstance(place, dict) else _ABSENT
        if place is not _ABSENT:
            present.append(column.name)
    return present


_ABSENT = object()


def file_columns(handle: BinaryIO, fmt: ExportFormat) -> tuple[str, ...] | None:
    """The columns the export file holds (read from its start; the handle is left anywhere);
    None for a JSON export with no rows. Raises ColumnsError saying what is wrong."""
    if fmt == "csv":
        what = "row 0 (the header)"
        line = _text(_first_line(handle, MAX_HEADER_BYTES, what), what)
        return tuple(line.split(",")) if line else ()
    what = "row 1"
    line = _text(_first_line(handle, MAX_FIRST_ROW_BYTES, what), what)
    if not line:
        return None
    try:
        first = json.loads(line)
    except ValueError as exc:
        raise ColumnsError(f"{what}: it is not a JSON object ({exc})") from exc
    if not isinstance(first, dict):
        raise ColumnsError(f"{what}: it is not a JSON object")
    return tuple(first) if fmt == "jsonl" else tuple(_receipt_columns(first))


def header_for(fmt: ExportFormat, count: int) -> bytes:
    """What an export of this format with the first `count` columns starts with."""
    if fmt != "csv" or count == len(NAMES):
        return render_header(fmt)
    return (",".join(NAMES[:count]) + "\r\n").encode()


def _receipt_with(row: DecisionRow, count: int) -> dict[str, Any]:
    """The receipt as written when only the first `count` columns existed."""
    whole = receipt(row)
    if count <= _CHANNEL:
        whole["collection_method"] = RECEIPT_COLLECTION_METHOD  # every decision was a call then
    for column in spec.COLUMNS[count:]:
        *path, key = column.receipt
        places = [whole]
        for name in path:
            places.append(places[-1][name])
        del places[-1][key]
        for name, place in zip(reversed(path), reversed(places[:-1]), strict=True):
            if place[name]:
                break
            del place[name]  # a section only dropped columns filled did not exist then
    return whole


_JSON = json.JSONEncoder(ensure_ascii=False)


def render_rows_with(rows: Sequence[DecisionRow], fmt: ExportFormat, count: int) -> bytes:
    """The exact bytes these rows take in an export of this format with the first `count`
    columns (`render_rows` when that is all of today's)."""
    if count == len(NAMES):
        return render_rows(rows, fmt)
    if fmt == "csv":
        return "".join([",".join(csv_written_cells(row)[:count]) + "\r\n" for row in rows]).encode()
    if fmt == "jsonl":
        lists = {c.name for c in spec.COLUMNS if c.kind == "list"}
        objects = []
        for row in rows:
            values = dict(zip(NAMES[:count], row_values(row), strict=False))
            objects.append({k: list(v) if k in lists else v for k, v in values.items()})
        return "".join([_JSON.encode(o) + "\n" for o in objects]).encode()
    return "".join([_JSON.encode(_receipt_with(row, count)) + "\n" for row in rows]).encode()
