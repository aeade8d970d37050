"""The export's columns, each declared once, and the CSV rule they are written by.

A Column says what the export calls a value (CSV header, JSON key, DecisionRow
attribute), where a decision's value is read from (a column of its event, its
caller's phone, a key of its hashed data, a key of its call's recording), how CSV
writes it (as is: values the store writes itself; neutralised: text from outside;
the phone rule), and where it sits in a consent receipt. Everything else derives
from COLUMNS: DecisionRow's field order (checked below), both backends' reads, the
SQLite fast path's SQL (consent_store.sqlite.export_sql), the CSV header and cells,
JSON Lines keys, receipts (ivr.evidence.export) and `ivr verify --export`.

Adding a column: a Column at the end of COLUMNS (the order is a public contract),
the field at the end of DecisionRow (and of ConsentDecision if the caller supplies
it), a row in README's table. Never imports `ivr`; never touches a database.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

from consent_store.events import DecisionRow
from consent_store.phone import is_e164_format

# event: a column of the events table (the same value as the hashed body's, which `verify` holds);
# subject: the caller's phone (kept outside the chain, so it can be erased);
# decision: a key of the decision event's data; recording: a key of its call's recording's data
# (its `recording_archived` event once the audio is archived, else its recording status).
Source = Literal["event", "subject", "decision", "recording"]
# as_is: a value the store writes itself (times, actions, hashes, numbers), which never starts
# like a formula; neutralise: text from outside; phone: E.164 as is, anything else neutralised.
CsvRule = Literal["as_is", "neutralise", "phone"]
Kind = Literal["text", "integer", "list"]


@dataclass(frozen=True)
class Column:
    """One export column."""

    name: str  # CSV header, JSON key and DecisionRow attribute
    source: Source
    key: str  # the events or subjects column, or the key in the decision's or recording's data
    csv: CsvRule = "neutralise"
    kind: Kind = "text"  # list: a JSON list, joined with "; " in CSV
    required: bool = False  # decision data: a decision without it cannot be read
    # Few distinct values across calls (the business, the script...): SQLite's fast path
    # renders their cells once per distinct combination. Never a value that differs by caller.
    shared: bool = False
    receipt: tuple[str, ...] = ()  # where the value sits in a consent receipt
    # What a decision without the key reads as (e.g. the channel of a phone call, which old and
    # new calls' data leave out). Shared columns only: their cells are rendered in Python, so
    # SQLite's fast path takes the default from there too.
    default: str | None = None


def _scripted(key: str, receipt: tuple[str, ...], csv: CsvRule = "neutralise", kind: Kind = "text") -> Column:
    """Decision data every decision holds, set by the script the caller heard: few distinct values."""
    return Column(key, "decision", key, csv, kind, required=True, shared=True, receipt=receipt)


def _from_twilio(key: str, csv: CsvRule = "neutralise") -> Column:
    """What Twilio's webhook said about the call, verbatim; None when it was not sent."""
    return Column(key, "decision", key, csv, receipt=("caller_identity", key))


# The order is a public contract: existing columns keep their names and places, new ones
# come at the end.
COLUMNS: tuple[Column, ...] = (
    Column("recorded_at", "event", "recorded_at", "as_is", receipt=("recorded_at",)),
    Column("phone", "subject", "phone", "phone", receipt=("subject", "phone")),
    Column("business", "event", "business", shared=True, receipt=("controller", "name")),
    _scripted("action", ("action",), "as_is"),
    _scripted("message_types", ("purposes",), kind="list"),
    Column("call_sid", "event", "call_sid", receipt=("evidence", "call_sid")),
    _scripted("digits", ("evidence", "digits")),
    _scripted("locale", ("locale",)),
    _scripted("script_version", ("evidence", "script_version"), "as_is", "integer"),
    _scripted("script_sha256", ("evidence", "script_sha256"), "as_is"),
    Column("recording_sid", "recording", "recording_sid", receipt=("evidence", "recording", "sid")),
    Column("recording_url", "recording", "url", receipt=("evidence", "recording", "url")),
    Column(
        "recording_duration",
        "recording",
        "duration",
        "as_is",
        "integer",
        receipt=("evidence", "recording", "duration"),
    ),
    Column("record_hash", "event", "hash", "as_is", receipt=("evidence", "record_hash")),
    _from_twilio("stir_verstat"),
    _from_twilio("called_number", "phone"),
    _from_twilio("account_sid"),
    _from_twilio("from_country"),
    _from_twilio("caller_name"),
    # 1 for a decision recorded by a simulated call (`ivr call --record`), empty for a real one.
    Column("simulated", "decision", "simulated", "as_is", "integer", receipt=("evidence", "simulated")),
    # Where the decision was made: voice (a call: the data has no channel), whatsapp or sms (a
    # keyword by message), or what another system named through POST /api/opt-outs.
    Column("channel", "decision", "channel", shared=True, receipt=("evidence", "channel"), default="voice"),
    # The SHA-256 of the call's audio as kept in the recording archive (its `recording_archived`
    # event, which the decision's recording is then read from); empty until it is archived.
    Column("recording_sha256", "recording", "sha256", "as_is", receipt=("evidence", "recording", "sha256")),
)

NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
EVENT_COLUMNS = tuple(c for c in COLUMNS if c.source == "event")
SHARED_DATA = tuple(c for c in COLUMNS if c.source == "decision" and c.shared)
PER_CALL_DATA = tuple(c for c in COLUMNS if c.source == "decision" and not c.shared)
RECORDING_COLUMNS = tuple(c for c in COLUMNS if c.source == "recording")
# Where the record's hash is: a chunk of CSV names its first and last record by it.
RECORD_HASH = next(i for i, c in enumerate(COLUMNS) if (c.source, c.key) == ("event", "hash"))

if tuple(f.name for f in fields(DecisionRow)) != ("seq", *NAMES):
    raise ValueError("DecisionRow's fields must be seq and then consent_store.columns.NAMES, in order")
if any(c.shared and c.source not in ("event", "decision") for c in COLUMNS):
    raise ValueError("only event columns and decision data can be shared")
if any(c.default is not None and not (c.shared and c.source == "decision") for c in COLUMNS):
    raise ValueError("only shared decision data can have a default")
if [c.source for c in COLUMNS if c.source == "subject"] != ["subject"]:
    raise ValueError("the export has exactly one subject column, the phone")


# -- reading a decision -------------------------------------------------------------------


def _generated(name: str, parameters: str, expression: str, namespace: dict[str, Any]) -> Any:
    """A function `name(parameters)` returning `expression`, compiled once from COLUMNS (as
    dataclasses compiles __init__): the slow ways build and render rows a window at a time,
    and a call per column made them several times slower than one expression."""
    if not all(c.name.isidentifier() and c.key.isidentifier() for c in COLUMNS):
        raise ValueError("column names and keys must be Python identifiers")
    exec(f"def {name}({parameters}):\n    return {expression}\n", namespace)  # built from COLUMNS alone
    return namespace[name]


def _part(column: Column) -> str:
    """Where `decision_row` finds the column's value among its parameters."""
    if column.source == "event":
        return f"event[{EVENT_COLUMNS.index(column)}]"
    if column.source == "subject":
        return "phone"
    if column.source == "recording":
        return f"heard.get({column.key!r})"
    return (
        f"shared[{SHARED_DATA.index(column)}]"
        if column.shared
        else f"per_call[{PER_CALL_DATA.index(column)}]"
    )


def data_values(columns: Sequence[Column], values: Sequence[Any]) -> tuple[Any, ...]:
    """The values of these decision-data columns as DecisionRow holds them (lists as tuples).

    Raises ValueError naming a required key the decision does not hold."""
    found = []
    for column, value in zip(columns, values, strict=True):
        if value is None:
            if column.required:
                raise ValueError(f"its data has no {column.key!r}")
            value = column.default
        elif column.kind == "list":
            value = tuple(value)
        elif column.kind == "integer" and isinstance(value, bool):
            value = int(value)  # a JSON true (the `simulated` flag) reads as 1, as SQLite reads it
        found.append(value)
    return tuple(found)


decision_row: Callable[
    [int, Sequence[Any], str | None, Sequence[Any], Sequence[Any], Mapping[str, Any]], DecisionRow
] = _generated(
    "decision_row",
    "seq, event, phone, shared, per_call, heard",
    f"DecisionRow(seq, {', '.join(map(_part, COLUMNS))})",
    {"DecisionRow": DecisionRow},
)
decision_row.__doc__ = """A DecisionRow from its parts: EVENT_COLUMNS' values, the phone, SHARED_DATA's
and PER_CALL_DATA's values (from `data_values`) and the recording's data ({} if none)."""


def decision_row_from_data(
    seq: int, event: Sequence[Any], phone: str | None, data: Mapping[str, Any], heard: Mapping[str, Any]
) -> DecisionRow:
    """`decision_row` from the decision's whole data."""
    shared = data_values(SHARED_DATA, [data.get(c.key) for c in SHARED_DATA])
    per_call = data_values(PER_CALL_DATA, [data.get(c.key) for c in PER_CALL_DATA])
    return decision_row(seq, event, phone, shared, per_call, heard)


_VALUES = operator.attrgetter(*NAMES)


def row_values(row: DecisionRow) -> tuple[Any, ...]:
    """The row's values in COLUMNS order."""
    values: tuple[Any, ...] = _VALUES(row)
    return values


# -- CSV ---------------------------------------------------------------------------------

# A spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV injection").
FORMULA_STARTS = frozenset("=+-@\t\r")
# ...and a leading quote is what neutralising adds, so it is escaped the same way: every
# CSV cell that starts with a quote had exactly one added, and removing it gives the value.
NEUTRALISED_STARTS = FORMULA_STARTS | {"'"}


def neutralise(cell: str) -> str:
    """A CSV cell a spreadsheet shows as text: a quote before a formula start (or a quote)."""
    return "'" + cell if cell[:1] in NEUTRALISED_STARTS else cell


def restore(cell: str) -> str:
    """The stored value of a CSV cell written by `neutralise` (the reverse rule)."""
    return cell[1:] if cell[:1] == "'" else cell


def _phone_cell(text: str) -> str:
    """E.164 as it is (a number to a spreadsheet, never a formula); anything else neutralised."""
    return "'" + text if text[:1] in NEUTRALISED_STARTS and not is_e164_format(text) else text


def _cell(column: Column) -> str:
    """The expression of the column's CSV cell, over `row` (see `csv_cells`)."""
    value = f"row.{column.name}"
    if column.kind == "list":
        text = f"'; '.join({value})"
    elif column.kind == "integer":
        text = f"('' if {value} is None else str({value}))"
    else:
        text = f"({value} or '')"
    if column.csv == "as_is":
        return text
    if column.kind == "integer":
        raise ValueError(f"column {column.name}: numbers are written as they are")
    return f"{'neutralise' if column.csv == 'neutralise' else '_phone_cell'}({text})"


csv_cells: Callable[[DecisionRow], tuple[str, ...]] = _generated(
    "csv_cells",
    "row",
    f"({', '.join(map(_cell, COLUMNS))},)",
    {"neutralise": neutralise, "_phone_cell": _phone_cell},
)
csv_cells.__doc__ = "One decision as the text of its CSV cells, in COLUMNS order, by each column's rule."


def quoted(cell: str) -> str:
    """A cell as RFC 4180 writes it: quoted if it holds , " CR or LF."""
    if '"' in cell or "," in cell or "\r" in cell or "\n" in cell:
        return '"' + cell.replace('"', '""') + '"'
    return cell


_SEPARATORS = len(COLUMNS) - 1


def csv_line(row: DecisionRow) -> str:
    """One decision as a CSV line (RFC 4180: CRLF, a cell quoted if it holds , " CR or LF)."""
    cells = csv_cells(row)
    line = ",".join(cells)
    # Most lines need no quoting at all: one scan of the line says so (csv.writer is 3x slower).
    if '"' in line or "\r" in line or "\n" in line or line.count(",") != _SEPARATORS:
        line = ",".join(map(quoted, cells))
    return line + "\r\n"


def csv_written_cells(row: DecisionRow) -> tuple[str, ...]:
    """One decision's CSV cells exactly as `csv_line` writes them (by their rules, then quoted)."""
    return tuple(map(quoted, csv_cells(row)))


CSV_HEADER = (",".join(NAMES) + "\r\n").encode()


def render_csv(rows: Sequence[DecisionRow]) -> bytes:
    """The CSV lines of these decisions (no header)."""
    return "".join(map(csv_line, rows)).encode()


@dataclass(frozen=True)
class CsvChunk:
    """The CSV bytes of some decisions, in order, and the first and last one's record hash."""

    data: bytes
    rows: int
    first_hash: str | None
    last_hash: str | None


CSV_CHUNK_ROWS = 1000


async def csv_chunks(rows: AsyncGenerator[DecisionRow, None]) -> AsyncGenerator[CsvChunk, None]:
    """Decisions rendered as CSV chunks in Python: a store's `export_csv_chunks` when its
    database cannot build the lines itself."""
    chunk: list[DecisionRow] = []
    async with contextlib.aclosing(rows):  # closing the chunks closes the store's read at once
        async for row in rows:
            chunk.append(row)
            if len(chunk) == CSV_CHUNK_ROWS:
                yield CsvChunk(render_csv(chunk), len(chunk), chunk[0].record_hash, chunk[-1].record_hash)
                chunk = []
    if chunk:
        yield CsvChunk(render_csv(chunk), len(chunk), chunk[0].record_hash, chunk[-1].record_hash)
