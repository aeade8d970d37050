"""The PostgreSQL backend of the consent store (asyncpg pool), for several processes on one database.

Same interface, hash chain, idempotency keys and schema ideas as the SQLite
store; the registry and audit queries are shared with it (written with `?`
placeholders, translated once). Writes go through this process's single
group-committing writer, ordered across processes by the `chain_head` row
lock. Never updates or deletes a consent event, and never puts the database
password in a message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from consent_store.access import AccessMixin
from consent_store.audit_reads import STANDING_SQL, AuditMixin, standing_from_row
from consent_store.business_changes import BusinessChangesMixin
from consent_store.call_log import CallLogMixin
from consent_store.dialect import POSTGRESQL
from consent_store.events import (
    Standing,
)
from consent_store.exceptions import (
    StoreUnavailable,
    opened,
)
from consent_store.group_commit import QueuedStore
from consent_store.opt_out_webhooks import OptOutWebhooksMixin
from consent_store.postgres.reads import PostgresReadsMixin
from consent_store.postgres.schema import migrate
from consent_store.postgres.writer import ACQUIRE_TIMEOUT, PG_ERRORS, PostgresWriter, pg_sql
from consent_store.stats import StatsMixin
from consent_store.writing import MAX_BATCH

LOG = logging.getLogger(__name__)


def describe_url(url: str) -> str:
    """host:port/database of a PostgreSQL URL, without user or password: safe for messages."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"


class PostgresStore(
    QueuedStore,
    CallLogMixin,
    PostgresReadsMixin,
    StatsMixin,
    AccessMixin,
    AuditMixin,
    BusinessChangesMixin,
    OptOutWebhooksMixin,
):
    """Consent store on a PostgreSQL database that several `ivr serve` processes may share."""

    # The dialect hooks of the shared SQL (StatsMixin holds SQLite's).
    _json_text = staticmethod(POSTGRESQL.json_text)
    _within_days = staticmethod(POSTGRESQL.within_days)
    _joined_text = staticmethod(POSTGRESQL.joined_text)

    def __init__(
        self,
        url: str,
        max_batch: int = MAX_BATCH,
        pool_size: int = 10,
        command_timeout: float = 15.0,
    ) -> None:
        self.url = url
        self._max_batch = max_batch
        self._pool_size = pool_size
        self._command_timeout = command_timeout
        self._pool_obj: asyncpg.Pool | None = None
        self._writer: PostgresWriter | None = None

    async def open(self) -> None:
        where = describe_url(self.url)
        try:
            pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=self._pool_size,
                command_timeout=self._command_timeout,
                timeout=ACQUIRE_TIMEOUT,
            )
        except PG_ERRORS + (ValueError,) as exc:  # ValueError: a malformed URL
            raise StoreUnavailable(f"cannot connect to PostgreSQL at {where}: {exc}") from exc
        assert pool is not None
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
                await _warn_if_head_disagrees(conn)
        except BaseException as exc:
            await pool.close()
            if isinstance(exc, PG_ERRORS):
                raise StoreUnavailable(f"cannot open PostgreSQL database {where}: {exc}") from exc
            raise
        self._pool_obj = pool
        self._writer = PostgresWriter(pool, max_batch=self._max_batch)
        await self._writer.start()

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.stop()
        if self._pool_obj is not None:
            try:
                await asyncio.wait_for(self._pool_obj.close(), timeout=10)
            except PG_ERRORS:
                self._pool_obj.terminate()
        self._writer = self._pool_obj = None

    # -- primitives the shared mixins use -------------------------------------

    @property
    def _pool(self) -> asyncpg.Pool:
        return opened(self._pool_obj)

    async def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        try:
            return await self._pool.fetchrow(pg_sql(sql), *params)
        except PG_ERRORS as exc:
            raise StoreUnavailable(f"could not read the consent store: {exc}") from exc

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return list(await self._pool.fetch(pg_sql(sql), *params))
        except PG_ERRORS as exc:
            raise StoreUnavailable(f"could not read the consent store: {exc}") from exc

    async def _checkpoint(self) -> None:
        """Reclaim the space of deleted rows (an erased phone) in the subjects table."""
        try:
            await self._pool.execute("VACUUM subjects")
        except PG_ERRORS as exc:
            LOG.warning("could not vacuum the subjects table after an erasure: %s", exc)

    # -- settings ---------------------------------------------------------

    async def standing(self, phone: str, business: str) -> Standing | None:
        """The latest opt-in/opt-out of this phone for this business, from an index."""
        return standing_from_row(await self._fetchone(STANDING_SQL, (phone, business)))

    async def event_count(self) -> int:
        row = await self._fetchone("SELECT COALESCE(MAX(seq), 0) FROM events")
        return int(row[0])


async def _warn_if_head_disagrees(conn: asyncpg.Connection) -> None:
    """The chain_head row is evidence too: report, never repair, a head the events do not reach."""
    head = await conn.fetchrow("SELECT seq, hash FROM chain_head WHERE id = 1")
    last = await conn.fetchrow("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")
    if head is None:
        LOG.error("the chain_head row is missing: appends will fail; run 'ivr verify'")
    elif (int(head[0]), str(head[1])) != ((int(last[0]), str(last[1])) if last else (0, head[1])):
        LOG.error("the chain head (record %s) is not the last record held; run 'ivr verify'", head[0])
