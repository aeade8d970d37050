"""Where a business is told about opt-outs (its webhook), and how far the telling got.

Setting the webhook is a chained business change (without its secret); the delivery cursor
and failure count are side writes outside the chain. Shared by both backends (portable SQL).
The sender is ivr/optout_webhooks.py; this is what it reads and records.
"""

from __future__ import annotations

from typing import Any

from consent_store.events import NewEvent, OptOutNotice, OptOutWebhook
from consent_store.group_commit import SideWrite
from consent_store.registry import RegistryMixin
from consent_store.writing import utc_now


class OptOutWebhooksMixin(RegistryMixin):
    """Mixed into both stores: a business's opt-out webhook and its delivery cursor."""

    async def set_opt_out_webhook(self, business: str, url: str | None, secret: str, author: str) -> None:
        """Send the business every opt-out from now on (url None: stop). Chained, without the secret."""
        await self._require_business(business)
        head = await self._fetchone("SELECT COALESCE(MAX(seq), 0) FROM events")
        writes: list[SideWrite] = (
            [("DELETE FROM opt_out_webhooks WHERE business = ?", (business,))]
            if url is None
            else [
                (
                    "INSERT INTO opt_out_webhooks (business, url, secret, cursor_seq, updated_at)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (business) DO UPDATE SET url = excluded.url,"
                    " secret = excluded.secret, failures = 0, last_error = NULL,"
                    " updated_at = excluded.updated_at",
                    (business, url, secret, int(head[0]), utc_now()),
                )
            ]
        )
        event = NewEvent(
            kind="business",
            idempotency_key=f"business:{business}:opt_out_webhook:{utc_now()}",
            business=business,
            fields={"change": "opt_out_webhook", "url": url, "author": author},
        )
        await self._append(event, writes)

    async def opt_out_webhooks(self) -> list[OptOutWebhook]:
        rows = await self._fetchall(
            "SELECT business, url, secret, cursor_seq, failures, last_error FROM opt_out_webhooks"
        )
        return [OptOutWebhook(*row) for row in rows]

    async def opt_outs_after(self, business: str, after_seq: int, limit: int = 50) -> list[OptOutNotice]:
        """Opt-outs of a business recorded after record `after_seq`, oldest first."""
        rows = await self._fetchall(
            "SELECT e.seq, e.recorded_at, e.call_sid, s.phone, e.hash,"
            f" coalesce({self._json_text('e.body', 'data', 'channel')}, 'voice') FROM events e"
            " LEFT JOIN subjects s ON s.subject = e.subject WHERE e.seq > ? AND e.kind = 'decision'"
            " AND e.action = 'opt_out' AND e.business = ? ORDER BY e.seq LIMIT ?",
            (after_seq, business, limit),
        )
        return [OptOutNotice(*row) for row in rows]

    async def opt_out_webhook_result(
        self, business: str, delivered_seq: int | None, error: str | None
    ) -> None:
        """Record a delivery: advance past `delivered_seq`, or count a failure."""
        if delivered_seq is not None:
            sql = (
                # Never backwards (a late result of an earlier delivery); the same on both backends.
                "UPDATE opt_out_webhooks SET cursor_seq = CASE WHEN cursor_seq > ? THEN cursor_seq"
                " ELSE ? END, failures = 0, last_error = NULL, updated_at = ? WHERE business = ?"
            )
            params: tuple[Any, ...] = (delivered_seq, delivered_seq, utc_now(), business)
        else:
            sql = (
                "UPDATE opt_out_webhooks SET failures = failures + 1, last_error = ?, updated_at = ?"
                " WHERE business = ?"
            )
            params = (error, utc_now(), business)
        await self._side_writes([(sql, params)])
