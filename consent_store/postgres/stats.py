"""The opt-in quality figures on PostgreSQL: the same SQL, with PostgreSQL's JSON and time syntax."""

from __future__ import annotations

from consent_store.stats import StatsMixin


class PostgresStatsMixin(StatsMixin):
    """Mixed into PostgresStore ahead of the shared mixins."""

    @staticmethod
    def _json_text(column: str, *path: str) -> str:
        return f"({column}::jsonb #>> '{{{','.join(path)}}}')"

    @staticmethod
    def _joined_text(expression: str, separator: str, order_by: str) -> str:
        return f"string_agg({expression}, '{separator}' ORDER BY {order_by})"

    @staticmethod
    def _within_days(earlier: str, later: str, days: int) -> str:
        return f"{later}::timestamptz - {earlier}::timestamptz <= interval '{days} days'"
