"""Delivery figures per opt-in script version: what happened to the messages the consents allowed.

A message (its first status callback, `messages`) is attributed to the script version and
locale of its recipient's opt-in in force when it was first reported; one sent with no opt-in
in force goes under locale None. Per group: messages, delivered (`delivered` or `read`),
read, failed (`failed` or `undelivered`) and failures by ErrorCode; and, per recipient (their
first message in the range), opt-outs by channel (`voice` for a call) within 7 and 30 days.
Reads only; the SQL serves both backends through the stats dialect hooks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from consent_store.message_statuses import RECIPIENTS_CTE, standing_sql
from consent_store.queries import follow_up_counts, follow_up_cutoffs


@dataclass(frozen=True)
class DeliveryFigures:
    """The messages of one opt-in script version and locale (None: no opt-in in force)."""

    locale: str | None
    script_version: int | None
    messages: int
    delivered: int  # reported delivered or read
    read: int
    failed: int  # reported failed or undelivered
    errors: tuple[tuple[int | None, int], ...]  # (ErrorCode, failed messages), most first
    recipients: int  # distinct numbers messaged in the range
    followed_7d: int  # recipients whose first message is at least 7 days old
    opted_out_7d: tuple[tuple[str, int], ...]  # (channel, recipients who opted out within 7 days)
    followed_30d: int
    opted_out_30d: tuple[tuple[str, int], ...]

    @property
    def opted_out_7d_total(self) -> int:
        return sum(n for _, n in self.opted_out_7d)

    @property
    def opted_out_30d_total(self) -> int:
        return sum(n for _, n in self.opted_out_30d)


class DeliveryStore(Protocol):
    """What the figures need of a store: reads and the dialect hooks (both backends)."""

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    def _json_text(self, column: str, *path: str) -> str: ...

    def _within_days(self, earlier: str, later: str, days: int) -> str: ...


def _version_columns(store: DeliveryStore, event: str) -> str:
    locale = store._json_text(f"{event}.body", "data", "locale")
    version = store._json_text(f"{event}.body", "data", "script_version")
    return (
        f"CASE WHEN {event}.action = 'opt_in' THEN {locale} ELSE '' END AS locale,"
        f" CASE WHEN {event}.action = 'opt_in' THEN CAST({version} AS INTEGER) ELSE 0 END AS version"
    )


def _outcomes_sql(store: DeliveryStore) -> str:
    return (
        f"WITH {RECIPIENTS_CTE}, placed AS MATERIALIZED (SELECT m.message_sid,"
        f" {standing_sql(True)} AS standing_seq FROM messages m LEFT JOIN r ON r.phone = m.to_number"
        " WHERE m.business = ? AND m.first_at >= ? AND m.first_at < ?),"
        f" versioned AS MATERIALIZED (SELECT p.message_sid, {_version_columns(store, 'e')}"
        " FROM placed p LEFT JOIN events e ON e.seq = p.standing_seq),"
        " outcome AS (SELECT v.locale, v.version, v.message_sid,"
        " max(CASE WHEN s.status IN ('delivered', 'read') THEN 1 ELSE 0 END) AS delivered,"
        " max(CASE WHEN s.status = 'read' THEN 1 ELSE 0 END) AS was_read,"
        " max(CASE WHEN s.status IN ('failed', 'undelivered') THEN 1 ELSE 0 END) AS failed,"
        " max(CASE WHEN s.status IN ('failed', 'undelivered') THEN s.error_code END) AS code"
        " FROM versioned v JOIN message_statuses s ON s.message_sid = v.message_sid"
        " GROUP BY v.locale, v.version, v.message_sid)"
        " SELECT locale, version, code, count(*), sum(delivered), sum(was_read), sum(failed)"
        " FROM outcome GROUP BY locale, version, code"
    )


def _opt_outs_sql(store: DeliveryStore) -> str:
    channel = store._json_text("o.body", "data", "channel")
    counts = follow_up_counts(store._within_days, "first_at", "out_at", "out_at IS NOT NULL", "out")
    opted_out = (
        "(SELECT min(e.seq) FROM subjects s JOIN events e ON e.subject = s.subject"
        " WHERE s.phone = m.to_number AND e.business = m.business AND e.kind = 'decision'"
        " AND e.action = 'opt_out' AND e.recorded_at > m.first_at)"
    )
    return (
        f"WITH {RECIPIENTS_CTE}, firsts AS (SELECT to_number, business, min(first_at) AS first_at"
        " FROM messages WHERE business = ? AND first_at >= ? AND first_at < ? GROUP BY to_number, business),"
        f" placed AS MATERIALIZED (SELECT m.first_at, {standing_sql(True)} AS standing_seq,"
        f" CASE WHEN r.any_out = 1 THEN {opted_out} END AS out_seq"
        " FROM firsts m LEFT JOIN r ON r.phone = m.to_number),"
        f" versioned AS (SELECT p.first_at, {_version_columns(store, 'e')}, o.recorded_at AS out_at,"
        f" CASE WHEN o.seq IS NULL THEN NULL ELSE COALESCE({channel}, 'voice') END AS channel"
        " FROM placed p LEFT JOIN events e ON e.seq = p.standing_seq LEFT JOIN events o ON o.seq = p.out_seq)"
        f" SELECT locale, version, channel, count(*), {counts}"
        " FROM versioned GROUP BY locale, version, channel"
    )


async def delivery_figures(
    store: DeliveryStore, business: str, since: str | None, until: str | None, now: dt.datetime
) -> tuple[DeliveryFigures, ...]:
    """The business's messages first reported in [since, until), per opt-in script version."""
    low, high = since or "0000", until or "9999"
    groups: dict[tuple[str, int], dict[str, Any]] = {}

    def group(locale: Any, version: Any) -> dict[str, Any]:
        key = (str(locale or ""), int(version or 0))
        return groups.setdefault(
            key,
            {"messages": 0, "delivered": 0, "read": 0, "failed": 0, "errors": {}, "recipients": 0,
             "followed_7": 0, "followed_30": 0, "out_7": {}, "out_30": {}},
        )  # fmt: skip

    for locale, version, code, messages, delivered, was_read, failed in await store._fetchall(
        _outcomes_sql(store), (business, business, low, high)
    ):
        g = group(locale, version)
        g["messages"] += int(messages)
        g["delivered"] += int(delivered or 0)
        g["read"] += int(was_read or 0)
        g["failed"] += int(failed or 0)
        if int(failed or 0):
            key = None if code is None else int(code)
            g["errors"][key] = g["errors"].get(key, 0) + int(failed)
    cutoffs = follow_up_cutoffs(now)
    for locale, version, channel, recipients, f7, o7, f30, o30 in await store._fetchall(
        _opt_outs_sql(store), (business, business, low, high, *cutoffs)
    ):
        g = group(locale, version)
        g["recipients"] += int(recipients)
        g["followed_7"] += int(f7 or 0)
        g["followed_30"] += int(f30 or 0)
        if channel is not None:
            for days, count in ((7, o7), (30, o30)):
                if int(count or 0):
                    g[f"out_{days}"][str(channel)] = int(count)
    figures = []
    for (locale, version), g in groups.items():
        figures.append(
            DeliveryFigures(
                locale or None,
                version or None,
                g["messages"],
                g["delivered"],
                g["read"],
                g["failed"],
                tuple(sorted(g["errors"].items(), key=lambda item: (-item[1], item[0] or 0))),
                g["recipients"],
                g["followed_7"],
                tuple(sorted(g["out_7"].items())),
                g["followed_30"],
                tuple(sorted(g["out_30"].items())),
            )
        )
    figures.sort(key=lambda f: (f.locale is None, f.locale or "", f.script_version or 0))
    return tuple(figures)
