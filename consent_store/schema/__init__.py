"""The one schema version sequence both backends follow.

Version n of the schema is `VERSIONS[n - 1]`: what SQLite and what PostgreSQL each run to
go from version n - 1 to n, side by side (the DDL is in this package's modules, by
version). SQLite records the version in `PRAGMA user_version` (consent_store/sqlite/schema.py),
PostgreSQL in its `schema_sequence` table (consent_store/postgres/schema.py, which also maps
the numbers PostgreSQL databases recorded before there was one sequence). From version 4
on (PostgreSQL's first version held SQLite's first four at once), after every version both
schemas hold the same tables with the same columns, apart from each backend's own
bookkeeping (`BACKEND_ONLY_TABLES`); tests/test_schema_parity.py checks it.

To change the schema: append one `SchemaStep` to VERSIONS, with both DDLs (either may be
"" when a version has nothing to do on that backend), its DDL in the newest module here
(a new module when that one nears 400 lines). Never edit a version that shipped.
"""

from __future__ import annotations

from dataclasses import dataclass

from consent_store.schema import v1_v3, v4, v5_v8


@dataclass(frozen=True)
class SchemaStep:
    """One version: what it is for, and the DDL each backend runs to reach it."""

    purpose: str
    sqlite: str
    postgres: str


VERSIONS: tuple[SchemaStep, ...] = (
    SchemaStep("the event log, subjects, spoken texts and the registry", v1_v3.SQLITE_V1, v1_v3.POSTGRES_V1),
    SchemaStep("chain checkpoints", v1_v3.SQLITE_V2, v1_v3.POSTGRES_V2),
    SchemaStep("users and script drafts", v1_v3.SQLITE_V3, v1_v3.POSTGRES_V3),
    SchemaStep("API tokens; PostgreSQL's server-side append", v4.SQLITE_V4, v4.POSTGRES_V4),
    SchemaStep("opt-out webhooks", v5_v8.SQLITE_V5, v5_v8.POSTGRES_V5),
    SchemaStep(
        "admin role, business-limited users and tokens, web sessions", v5_v8.SQLITE_V6, v5_v8.POSTGRES_V6
    ),
    SchemaStep("message status callbacks", v5_v8.SQLITE_V7, v5_v8.POSTGRES_V7),
    SchemaStep("indexes of the compliance check and delivery figures", v5_v8.SQLITE_V8, v5_v8.POSTGRES_V8),
)
SCHEMA_VERSION = len(VERSIONS)

# Tables one backend keeps for itself: PostgreSQL's chain head row (SQLite keeps the head
# in a file beside the database) and its version record (SQLite: PRAGMA user_version).
BACKEND_ONLY_TABLES: dict[str, frozenset[str]] = {
    "sqlite": frozenset(),
    "postgres": frozenset({"chain_head", "schema_sequence"}),
}
