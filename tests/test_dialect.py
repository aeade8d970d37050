"""The SQL fragments that differ between the backends, pinned: the shared queries are built
from them, so a change here changes every backend's SQL (consent_store/dialect.py)."""

from __future__ import annotations

from consent_store import PostgresStore, SQLiteStore
from consent_store.dialect import POSTGRESQL, SQLITE
from consent_store.stats import StatsMixin


def test_sqlite_fragments() -> None:
    assert SQLITE.json_text("r.body", "data", "status") == "json_extract(r.body, '$.data.status')"
    assert SQLITE.within_days("f.at", "n.at", 7) == "julianday(n.at) - julianday(f.at) <= 7"
    assert SQLITE.joined_text("s", ", ", "r.seq") == "group_concat(s, ', ')"


def test_postgresql_fragments() -> None:
    assert POSTGRESQL.json_text("r.body", "data", "status") == "(r.body::jsonb #>> '{data,status}')"
    assert POSTGRESQL.json_text("body", "change") == "(body::jsonb #>> '{change}')"
    assert POSTGRESQL.within_days("f.at", "n.at", 30) == (
        "n.at::timestamptz - f.at::timestamptz <= interval '30 days'"
    )
    assert POSTGRESQL.joined_text("s", ", ", "r.seq") == "string_agg(s, ', ' ORDER BY r.seq)"


def test_each_store_class_uses_its_own_dialect() -> None:
    for store, dialect in ((SQLiteStore, SQLITE), (PostgresStore, POSTGRESQL), (StatsMixin, SQLITE)):
        assert store._json_text("b", "data", "x") == dialect.json_text("b", "data", "x")
        assert store._within_days("a", "b", 7) == dialect.within_days("a", "b", 7)
        assert store._joined_text("e", "|", "o") == dialect.joined_text("e", "|", "o")
