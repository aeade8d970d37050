"""SQL text shared by both backends (`?` placeholders; PostgreSQL's fetches translate them)."""

from __future__ import annotations

from typing import Any

from consent_store.events import ExportFilter


def decision_filter(where: ExportFilter) -> tuple[str, list[Any]]:
    """The WHERE clause (over `events e`) selecting the decisions an ExportFilter names."""
    sql, params = ["e.kind = 'decision'"], []
    for clause, value in (
        ("e.business = ?", where.business),
        ("e.action = ?", where.action),
        ("e.recorded_at >= ?", where.since),
        ("e.recorded_at < ?", where.until),
        ("e.call_sid = ?", where.call_sid),
        ("e.subject = (SELECT subject FROM subjects WHERE phone = ?)", where.phone),
    ):
        if value is not None:
            sql.append(clause)
            params.append(value)
    if where.businesses is not None:
        if where.businesses:
            sql.append(f"e.business IN ({', '.join('?' * len(where.businesses))})")
            params.extend(where.businesses)
        else:
            sql.append("1 = 0")
    if not where.include_demo:
        sql.append("e.business NOT IN (SELECT name FROM businesses WHERE demo = 1)")
    return " AND ".join(sql), params
