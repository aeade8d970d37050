"""The SQL of the SQLite CSV fast path (consent_store.sqlite_export), and its slow way.

`lines_sql` makes SQLite write finished CSV lines, with the cells many decisions share
taken from a temporary table that `shared_cells` fills from the caller's own CSV rules;
`rows_sql` and `decode_rows` read the same window as DecisionRows, for the slow way.
Never writes the database: the table of shared cells is a connection's temporary one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from consent_store.events import DecisionRow
from consent_store.exceptions import StoreUnavailable

RenderCells = Callable[[DecisionRow], Sequence[str]]

# What a spreadsheet would run as a formula, or a leading quote (ivr.export's rule).
_STARTS = "('=','+','-','@',char(9),char(13),'''')"
# is_e164: '+', then 7 to 15 ASCII digits, the first not 0 (the digits read back as an integer).
_E164 = (
    "(length({0}) BETWEEN 8 AND 16 AND substr({0}, 2, 1) BETWEEN '1' AND '9'"
    " AND '+' || CAST(substr({0}, 2) AS INTEGER) = {0})"
)


# The decision's recording: a 'completed' one if any, else the latest status (which ends
# the idempotency key; `verify` holds the key to the hashed body). ?1 is the snapshot's head.
# Two lookups in index order are cheaper than one that sorts by status.
_RECORDING = "FROM events r WHERE r.call_sid = e.call_sid AND r.kind = 'recording' AND r.seq <= ?1{}"
_COMPLETED = " AND substr(r.idempotency_key, -10) = ':completed'"
_LATEST = " ORDER BY r.seq DESC LIMIT 1"


def _recording(value: str) -> str:
    """`value` (over `events r`) of the decision's recording, or NULL if it has none."""
    completed = f"(SELECT {value} {_RECORDING.format(_COMPLETED + _LATEST)})"
    return f"coalesce({completed}, (SELECT {value} {_RECORDING.format(_LATEST)}))"


# ?2 and ?3 bound the window (seq > ?2 AND seq <= ?3); the filter's own parameters follow.
_FILTER_FIRST_PARAM = 4
# What the cells a decision shares with others depend on: its business (a column) and these
# values of its data, as one JSON array. Not the whole data: a call's seconds_to_decision
# would make every decision's different.
_SHARED_KEY = (
    "json_extract(e.body, '$.data.action', '$.data.message_types', '$.data.digits', '$.data.locale',"
    " '$.data.script_version', '$.data.script_sha256')"
)


def _numbered(clause: str) -> str:
    """The filter's `?` placeholders as ?4, ?5, ...: they follow the three numbered ones."""
    parts = clause.split("?")
    return "".join(f"{part}?{i}" for i, part in enumerate(parts[:-1], _FILTER_FIRST_PARAM)) + parts[-1]


def rows_sql(clause: str) -> str:
    """One window of decisions, each as the fields `decode_rows` reads, joined by SQLite."""
    fields = (
        "e.seq",
        "e.hash",
        "json_quote(s.phone)",
        "e.recorded_at",
        "json_quote(e.business)",
        "json_quote(e.call_sid)",
        "json_extract(e.body, '$.data')",
        f"ifnull({_recording('r.body')}, '')",
        _SHARED_KEY,
    )
    return (
        "SELECT count(*), group_concat(line, char(31)) FROM (SELECT e.seq,"
        f" {' || char(31) || '.join(fields)} AS line"
        " FROM events e LEFT JOIN subjects s ON s.subject = e.subject"
        f" WHERE {_numbered(clause)} AND e.seq > ?2 AND e.seq <= ?3 ORDER BY e.seq)"
    )


_FIELDS = 9


def decode_rows(count: int, chunk: str | None) -> list[tuple[DecisionRow, str]]:
    """The rows of one `rows_sql` window, each with its _SHARED_KEY."""
    if not count or chunk is None:
        return []
    loads = orjson.loads
    values = chunk.split("\x1f")
    if len(values) != _FIELDS * count:
        raise StoreUnavailable("a decision record cannot be read: run 'ivr verify'")

    def unquote(quoted: str) -> str:
        return quoted[1:-1] if "\\" not in quoted else str(loads(quoted))

    rows = []
    each = iter(values)
    try:
        for seq, digest, phone, at, business, call_sid, data_json, heard_body, shared_key in zip(
            *[each] * _FIELDS, strict=True
        ):
            data = loads(data_json)
            heard = loads(heard_body)["data"] if heard_body else {}
            row = DecisionRow(
                int(seq),
                at,
                None if phone == "null" else unquote(phone),
                unquote(business),
                data["action"],
                tuple(data["message_types"]),
                unquote(call_sid),
                data["digits"],
                data["locale"],
                data["script_version"],
                data["script_sha256"],
                heard.get("recording_sid"),
                heard.get("url"),
                heard.get("duration"),
                digest,
            )
            rows.append((row, shared_key))
    except (ValueError, KeyError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
        raise StoreUnavailable(f"a decision record cannot be read ({exc}): run 'ivr verify'") from exc
    rows.sort(key=lambda pair: pair[0].seq)
    return rows


def lines_sql(clause: str) -> str:
    """One window of decisions as finished CSV lines, or NULL for a line SQL cannot vouch for.

    The per-row cells are written as stored; a row whose call SID, phone or recording
    would be neutralised, or whose recording has values of unexpected JSON types, gets
    NULL (or a NUL character), so the window is rendered the slow way. Values needing
    quotes are found by the caller counting separators in the bytes.
    """

    def data(path: str) -> str:
        return f"json_extract(r.body, '$.data.{path}')"

    # One statement per recording field keeps every json_extract on the one cached parse.
    # json_extract cuts a string at an escaped NUL (\u0000): such a recording takes the slow way
    # (GLOB finds it several times faster than instr).
    heard = _recording(
        "CASE WHEN json_type(r.body, '$.data') = 'object' AND r.body NOT GLOB '*\\u0000*'"
        " AND ifnull(json_type(r.body, '$.data.recording_sid'), 'null') IN ('text', 'null')"
        " AND ifnull(json_type(r.body, '$.data.url'), 'null') IN ('text', 'null')"
        " AND ifnull(json_type(r.body, '$.data.duration'), 'null') IN ('integer', 'null')"
        f" AND substr(ifnull({data('recording_sid')}, ''), 1, 1) NOT IN {_STARTS}"
        f" AND substr(ifnull({data('url')}, ''), 1, 1) NOT IN {_STARTS}"
        f" THEN ifnull({data('recording_sid')}, '') || ',' || ifnull({data('url')}, '') || ','"
        f" || ifnull({data('duration')}, '') ELSE char(0) END"
    )
    phone_ok = f"(s.phone IS NULL OR substr(s.phone, 1, 1) NOT IN {_STARTS} OR {_E164.format('s.phone')})"
    line = (
        f"CASE WHEN substr(e.call_sid, 1, 1) NOT IN {_STARTS} AND {phone_ok} THEN"
        " e.recorded_at || ',' || ifnull(s.phone, '') || ',' || m.head || ',' || e.call_sid"
        f" || ',' || m.tail || ',' || ifnull({heard}, ',,') || ',' || e.hash || char(13, 10) END"
    )
    return (
        "SELECT count(*), count(line), total(commas), total(quotes), CAST(group_concat(line, '') AS BLOB)"
        " FROM (SELECT e.seq AS seq, m.commas AS commas, m.quotes AS quotes,"
        f" {line} AS line FROM events e LEFT JOIN subjects s ON s.subject = e.subject"
        " LEFT JOIN temp.export_csv_cells m ON m.business = e.business"
        f" AND m.data = {_SHARED_KEY}"
        f" WHERE {_numbered(clause)} AND e.seq > ?2 AND e.seq <= ?3 ORDER BY e.seq)"
    )


CELLS_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS export_csv_cells (business TEXT NOT NULL, data TEXT NOT NULL,"
    " head TEXT NOT NULL, tail TEXT NOT NULL, commas INTEGER NOT NULL, quotes INTEGER NOT NULL,"
    " PRIMARY KEY (business, data))"
)

CELLS_INSERT = "INSERT OR IGNORE INTO temp.export_csv_cells VALUES (?, ?, ?, ?, ?, ?)"


def shared_cells(row: DecisionRow, shared_key: str, render_cells: RenderCells) -> tuple[Any, ...] | None:
    """The table row of cells this decision shares with others like it, if SQL may use them."""
    cells = render_cells(row)
    head = ",".join(cells[2:5])  # business, action, message types
    tail = ",".join(cells[6:10])  # digits, locale, script version, script sha256
    inside = "".join(cells[2:5]) + "".join(cells[6:10])  # the cells without the commas between them
    if any(c in inside for c in "\r\n\x00"):
        return None  # the line count would not say where lines end: left to the slow way
    return (row.business, shared_key, head, tail, inside.count(","), inside.count('"'))
