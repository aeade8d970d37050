"""The few SQL fragments whose syntax differs between SQLite and PostgreSQL, as data.

The shared store logic writes portable SQL and asks its backend's `Dialect` for the rest: a
field of a JSON body, "at most N days later" between two ISO-8601 texts, and an ordered
string aggregate. One class, two instances; each store class exposes its dialect's methods
as the `StoreBackend` hooks `_json_text`, `_within_days` and `_joined_text`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Dialect:
    """Templates (str.format) of the fragments; see each method for its fields."""

    name: Literal["sqlite", "postgresql"]
    json_field: str  # {column}; the path as {dotted} (a.b) and as {listed} (a,b)
    within: str  # {earlier}, {later}, {days}
    joined: str  # {expression}, {separator}, {order_by}

    def json_text(self, column: str, *path: str) -> str:
        """SQL for a field of a JSON body, as text or number."""
        return self.json_field.format(column=column, dotted=".".join(path), listed=",".join(path))

    def within_days(self, earlier: str, later: str, days: int) -> str:
        """SQL: is the ISO-8601 text `later` at most `days` days after `earlier`?"""
        return self.within.format(earlier=earlier, later=later, days=days)

    def joined_text(self, expression: str, separator: str, order_by: str) -> str:
        """SQL aggregate: the texts joined by `separator`, in `order_by` order (SQLite keeps
        the scan's order instead)."""
        return self.joined.format(expression=expression, separator=separator, order_by=order_by)


SQLITE = Dialect(
    "sqlite",
    json_field="json_extract({column}, '$.{dotted}')",
    within="julianday({later}) - julianday({earlier}) <= {days}",
    joined="group_concat({expression}, '{separator}')",
)
POSTGRESQL = Dialect(
    "postgresql",
    json_field="({column}::jsonb #>> '{{{listed}}}')",
    within="{later}::timestamptz - {earlier}::timestamptz <= interval '{days} days'",
    joined="string_agg({expression}, '{separator}' ORDER BY {order_by})",
)
