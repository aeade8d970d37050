"""The SQL of SQLite's decision reads and CSV fast path, generated from consent_store.columns.

`rows_sql` and `RowDecoder` read decisions as DecisionRows (`SQLiteStore.export_decisions`
and the fast path's slow way). `lines_sql` makes SQLite write finished CSV lines: each
column's cell by its CSV rule, the cells many decisions share (the `shared` columns)
taken from a temporary table that `shared_cells` fills with cells rendered in Python,
and a line (or a NUL in it) wherever SQL cannot vouch that the column's rule leaves
the value as it is, so that window is rendered in Python instead. Nothing here knows a
column by name or position. Never writes the database: the table of shared cells is a
connection's temporary one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from consent_store.columns import (
    COLUMNS,
    EVENT_COLUMNS,
    NEUTRALISED_STARTS,
    PER_CALL_DATA,
    SHARED_DATA,
    Column,
    csv_written_cells,
    data_values,
    decision_row,
)
from consent_store.decisions import heard_data, recording_sql
from consent_store.dialect import SQLITE
from consent_store.events import DecisionRow
from consent_store.exceptions import StoreUnavailable


def _sql_char(char: str) -> str:
    return "''''" if char == "'" else f"'{char}'" if char.isprintable() else f"char({ord(char)})"


# What the CSV rule neutralises (consent_store.columns.NEUTRALISED_STARTS), as an SQL list.
_STARTS = "(" + ",".join(_sql_char(c) for c in sorted(NEUTRALISED_STARTS)) + ")"
# consent_store.phone.is_e164_format: '+', then 7 to 15 ASCII digits, the first not 0 (the
# digits read back as an integer). A property test holds the two equal.
_E164 = (
    "(length({0}) BETWEEN 8 AND 16 AND substr({0}, 2, 1) BETWEEN '1' AND '9'"
    " AND '+' || CAST(substr({0}, 2) AS INTEGER) = {0})"
)
_JSON_TYPES = {"text": "('text', 'null')", "integer": "('integer', 'null')"}


def _kept_as_is(column: Column, value: str) -> str | None:
    """SQL true when the column's CSV rule writes `value` (SQL text or NULL) as it is;
    None when the rule always does."""
    if column.csv == "as_is":
        return None
    unchanged = f"substr(ifnull({value}, ''), 1, 1) NOT IN {_STARTS}"
    return f"({unchanged} OR {_E164.format(value)})" if column.csv == "phone" else unchanged


def _recording(value: str) -> str:
    """`value` (over `events r`) of the decision's recording, or NULL if it has none: the one
    rule of consent_store.decisions; ?1 is the snapshot's head."""
    return recording_sql(SQLITE.json_text, value, "?1")


def _json_values(body: str, columns: Sequence[Column]) -> str:
    """The columns' values in the body's data, as the text of one JSON array."""
    paths = [f"'$.data.{c.key}'" for c in columns]
    if not paths:
        return "'[]'"
    if len(paths) == 1:  # json_extract gives an array only for two paths or more
        return f"'[' || ifnull({body} -> {paths[0]}, 'null') || ']'"
    return f"json_extract({body}, {', '.join(paths)})"


# What the cells a decision shares with others depend on: its shared event columns (e.g. the
# business) and its shared data, as one JSON array. Not the whole data: a call's
# seconds_to_decision would make every decision's different.
_SHARED_KEY = _json_values("e.body", SHARED_DATA)
_SHARED_EVENT = tuple(c for c in EVENT_COLUMNS if c.shared)


# -- decisions as DecisionRows -----------------------------------------------------------

# Each row as one string, its fields split on a control character none can hold: texts are
# JSON-quoted, the data and the recording are JSON, the seq a number.
_FIELDS = (
    "e.seq",
    *(f"json_quote(e.{c.key})" for c in EVENT_COLUMNS),
    "json_quote(s.phone)",
    _SHARED_KEY,
    _json_values("e.body", PER_CALL_DATA),
    f"ifnull({_recording('r.body')}, '')",
)
# ?2 and ?3 bound the window (seq > ?2 AND seq <= ?3); the filter's own parameters follow.
_FILTER_FIRST_PARAM = 4


def _numbered(clause: str) -> str:
    """The filter's `?` placeholders as ?4, ?5, ...: they follow the three numbered ones."""
    parts = clause.split("?")
    return "".join(f"{part}?{i}" for i, part in enumerate(parts[:-1], _FILTER_FIRST_PARAM)) + parts[-1]


def rows_sql(clause: str, limit: int | None = None) -> str:
    """Decisions after record ?2 up to ?3 (at most `limit`), as `RowDecoder` reads them:
    count, last seq, and the rows joined by SQLite into one string (its thread builds it
    without the GIL while Python decodes the previous one)."""
    return (
        "SELECT count(*), max(seq), group_concat(line, char(31)) FROM (SELECT e.seq,"
        f" {' || char(31) || '.join(_FIELDS)} AS line"
        " FROM events e LEFT JOIN subjects s ON s.subject = e.subject"
        f" WHERE {_numbered(clause)} AND e.seq > ?2 AND e.seq <= ?3 ORDER BY e.seq"
        f"{'' if limit is None else f' LIMIT {limit}'})"
    )


_KNOWN_DATA = 4096  # distinct shared data texts kept parsed
_NO_PER_CALL = orjson.dumps([None] * len(PER_CALL_DATA)).decode()  # as SQLite writes it
_NONE = (None,) * len(PER_CALL_DATA)


class RowDecoder:
    """Reads `rows_sql`'s rows; a decision's shared data (action, types, key, locale, script)
    has few distinct texts, each parsed once (at most _KNOWN_DATA kept)."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[Any, ...]] = {}

    def decode(self, count: int, chunk: str | None) -> list[tuple[DecisionRow, str]]:
        """The rows of one `rows_sql` result, oldest first, each with its shared data's text."""
        if not count or chunk is None:
            return []
        loads, known = orjson.loads, self._known
        values = chunk.split("\x1f")
        if len(values) != len(_FIELDS) * count:
            raise StoreUnavailable("a decision record cannot be read: run 'ivr verify'")

        def unquote(quoted: str) -> Any:
            if quoted == "null":
                return None
            return quoted[1:-1] if "\\" not in quoted else loads(quoted)

        rows = []
        each = iter(values)
        events = len(EVENT_COLUMNS)
        try:
            for seq, *fields in zip(*[each] * len(_FIELDS), strict=True):
                phone, shared_key, per_call_json, heard_body = fields[events:]
                shared = known.get(shared_key)
                if shared is None:
                    if len(known) >= _KNOWN_DATA:
                        known.clear()
                    shared = known[shared_key] = data_values(SHARED_DATA, loads(shared_key))
                per_call = (
                    _NONE
                    if per_call_json == _NO_PER_CALL
                    else data_values(PER_CALL_DATA, loads(per_call_json))
                )
                heard = heard_data(heard_body)
                event = [unquote(v) for v in fields[:events]]
                row = decision_row(int(seq), event, unquote(phone), shared, per_call, heard)
                rows.append((row, shared_key))
        except (ValueError, KeyError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
            raise StoreUnavailable(f"a decision record cannot be read ({exc}): run 'ivr verify'") from exc
        rows.sort(key=lambda pair: pair[0].seq)  # group_concat's order is SQLite's choice
        return rows


# -- decisions as CSV lines --------------------------------------------------------------


def _segments() -> list[tuple[str, list[Column]]]:
    """COLUMNS as runs SQL writes in one piece: shared cells (one cell of the temporary
    table per run), a recording (one lookup per run), or one cell of its own."""
    runs: list[tuple[str, list[Column]]] = []
    for column in COLUMNS:
        kind = "shared" if column.shared else "recording" if column.source == "recording" else "own"
        if runs and runs[-1][0] == kind != "own":
            runs[-1][1].append(column)
        else:
            runs.append((kind, [column]))
    return runs


_SEGMENTS = _segments()
_SHARED_RUNS = [[COLUMNS.index(c) for c in run] for kind, run in _SEGMENTS if kind == "shared"]


def _recording_cells(columns: Sequence[Column]) -> str:
    """The cells of these recording columns, from one lookup; a NUL (so the window is
    rendered in Python) where a value's JSON type or CSV rule would change it."""

    def data(key: str) -> str:
        return f"json_extract(r.body, '$.data.{key}')"

    # One statement per recording keeps every json_extract on the one cached parse.
    # json_extract cuts a string at an escaped NUL (\u0000): such a recording takes the slow
    # way (GLOB finds it several times faster than instr).
    checks = ["json_type(r.body, '$.data') = 'object'", "r.body NOT GLOB '*\\u0000*'"]
    for c in columns:
        checks.append(f"ifnull(json_type(r.body, '$.data.{c.key}'), 'null') IN {_JSON_TYPES[c.kind]}")
    checks += [check for c in columns if (check := _kept_as_is(c, data(c.key))) is not None]
    cells = " || ',' || ".join(f"ifnull({data(c.key)}, '')" for c in columns)
    lookup = _recording(f"CASE WHEN {' AND '.join(checks)} THEN {cells} ELSE char(0) END")
    return f"ifnull({lookup}, '{',' * (len(columns) - 1)}')"


def _own_cell(column: Column) -> tuple[str, str | None]:
    """A per-decision cell and the SQL vouching for it (None: nothing to vouch for)."""
    if column.source == "event":
        return f"e.{column.key}", _kept_as_is(column, f"e.{column.key}")
    if column.source == "subject":
        return f"ifnull(s.{column.key}, '')", _kept_as_is(column, f"s.{column.key}")
    if column.kind == "list":
        raise ValueError(f"column {column.name}: a list from a decision's data must be shared")
    # Decision data: one lookup when absent (old records); a NUL where its type, its rule or an
    # escaped NUL (see _recording_cells) would make Python write something else.
    path = f"'$.data.{column.key}'"
    value = f"json_extract(e.body, {path})"
    wanted = "text" if column.kind == "text" else "integer"
    checks = [check] if (check := _kept_as_is(column, value)) is not None else []
    if column.kind == "text":
        checks.append(f"(e.body -> {path}) NOT GLOB '*\\u0000*'")
    written = f"CASE WHEN {' AND '.join(checks)} THEN {value} ELSE char(0) END" if checks else value
    cell = (
        f"CASE ifnull(json_type(e.body, {path}), 'null') WHEN 'null' THEN ''"
        f" WHEN '{wanted}' THEN {written} ELSE char(0) END"
    )
    return cell, None


def _line() -> str:
    cells: list[str] = []
    vouches: list[str] = []
    shared = 0
    for kind, run in _SEGMENTS:
        if kind == "shared":
            cells.append(f"m.s{shared}")
            shared += 1
        elif kind == "recording":
            cells.append(_recording_cells(run))
        else:
            cell, vouch = _own_cell(run[0])
            cells.append(cell)
            vouches += [vouch] if vouch is not None else []
    line = " || ',' || ".join(cells) + " || char(13, 10)"
    return f"CASE WHEN {' AND '.join(vouches)} THEN {line} END" if vouches else line


_LINE = _line()
SEPARATORS = len(COLUMNS) - 1  # commas between the cells of a line


def lines_sql(clause: str) -> str:
    """One window of decisions as finished CSV lines, or NULL for a line SQL cannot vouch for.

    The per-row cells are written as stored; a row whose cells a rule would change gets
    NULL (or a NUL character), so the window is rendered the slow way. Values needing
    quotes are found by the caller counting separators in the bytes.
    """
    joined = " AND ".join(f"m.{c.key} = e.{c.key}" for c in _SHARED_EVENT)
    return (
        "SELECT count(*), count(line), total(commas), total(quotes), CAST(group_concat(line, '') AS BLOB)"
        " FROM (SELECT e.seq AS seq, m.commas AS commas, m.quotes AS quotes,"
        f" {_LINE} AS line FROM events e LEFT JOIN subjects s ON s.subject = e.subject"
        f" LEFT JOIN temp.export_csv_cells m ON {joined + ' AND ' if joined else ''}m.data = {_SHARED_KEY}"
        f" WHERE {_numbered(clause)} AND e.seq > ?2 AND e.seq <= ?3 ORDER BY e.seq)"
    )


_CELLS_COLUMNS = [
    *(c.key for c in _SHARED_EVENT),
    "data",
    *(f"s{n}" for n in range(len(_SHARED_RUNS))),
    "commas",
    "quotes",
]
_CELLS_TYPES = ", ".join(
    f"{name} {'INTEGER' if name in ('commas', 'quotes') else 'TEXT'} NOT NULL" for name in _CELLS_COLUMNS
)
CELLS_TABLE = (
    f"CREATE TEMP TABLE IF NOT EXISTS export_csv_cells ({_CELLS_TYPES},"
    f" PRIMARY KEY ({', '.join([*(c.key for c in _SHARED_EVENT), 'data'])}))"
)
CELLS_INSERT = f"INSERT OR IGNORE INTO temp.export_csv_cells VALUES ({', '.join('?' * len(_CELLS_COLUMNS))})"


def shared_cells_key(row: DecisionRow, shared_key: str) -> tuple[Any, ...]:
    """What the table of shared cells is keyed by, for this decision."""
    return (*[getattr(row, c.name) for c in _SHARED_EVENT], shared_key)


def shared_cells(row: DecisionRow, shared_key: str) -> tuple[Any, ...] | None:
    """The table row of cells this decision shares with others like it, if SQL may use them."""
    cells = csv_written_cells(row)
    runs = [",".join(cells[i] for i in run) for run in _SHARED_RUNS]
    inside = "".join(cells[i] for run in _SHARED_RUNS for i in run)  # without the commas between
    if any(c in inside for c in "\r\n\x00"):
        return None  # the line count would not say where lines end: left to the slow way
    return (*shared_cells_key(row, shared_key), *runs, inside.count(","), inside.count('"'))
