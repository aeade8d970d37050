"""Message status callbacks kept outside the hash chain, and the messages sent without consent.

Sending systems point Twilio's StatusCallback of their WhatsApp/SMS messages at this service;
every status is kept once (`message_statuses`, keyed by MessageSid and status) with the time
it arrived, and each message's first report once (`messages`). Both inserts run through the
store's single writer, grouped with other writes into one durable commit, so an acknowledged
status is on disk before Twilio hears 2xx (Twilio does not retry a status callback unless the
URL's connection overrides ask). Rows are never updated; nothing here touches the chain.

`unconsented_messages` compares each message's recipient, when it was first reported, with
the consent standing for the business at that moment: the latest opt-in or opt-out decision
recorded at or before it, which is what `GET /api/consent` would have answered then.
Never imports `ivr` or Starlette.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from consent_store.group_commit import SideWrite

MessageChannel = Literal["whatsapp", "sms"]
# A message's first report decided how it counts: "never_opted_in" (no opt-in or opt-out of
# the recipient for the business before it) or "after_opt_out" (the latest was an opt-out).
Breach = Literal["never_opted_in", "after_opt_out"]

_INSERT_STATUS = (
    "INSERT INTO message_statuses (message_sid, status, error_code, to_number, from_number,"
    " channel, account_sid, business, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (message_sid, status) DO NOTHING"
)
_INSERT_MESSAGE = (
    "INSERT INTO messages (message_sid, business, to_number, from_number, channel, first_status,"
    " first_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (message_sid) DO NOTHING"
)

# The recipient's latest opt-in or opt-out for the message's business, recorded at or before
# the message's first report (`m`: to_number, business, first_at), from an index alone.
STANDING_AT_SQL = (
    "(SELECT max(e.seq) FROM subjects s JOIN events e ON e.subject = s.subject"
    " WHERE s.phone = m.to_number AND e.business = m.business AND e.kind = 'decision'"
    " AND e.action IN ('opt_in', 'opt_out') AND e.recorded_at <= m.first_at)"
)
# Each recipient's decisions for the business `?`, summed up once (a business sends many
# messages to the same people): most messages are settled by this row alone.
RECIPIENTS_CTE = (
    "r AS MATERIALIZED (SELECT s.phone AS phone,"
    " min(CASE WHEN e.action = 'opt_in' THEN e.recorded_at END) AS first_in,"
    " max(CASE WHEN e.action = 'opt_out' THEN 1 ELSE 0 END) AS any_out,"
    " count(*) AS decisions, max(e.seq) AS last_seq"
    " FROM events e JOIN subjects s ON s.subject = e.subject"
    " WHERE e.business = ? AND e.kind = 'decision' AND e.action IN ('opt_in', 'opt_out') GROUP BY s.phone)"
)


def standing_sql(need_record: bool) -> str:
    """SQL for the standing record at a message's first report, `m` LEFT JOIN RECIPIENTS_CTE `r`:
    NULL when none. Without `need_record`, -1 stands for "an opt-in, no opt-out ever"; with it,
    the opt-in's own record (exact lookups only where a recipient has several decisions)."""
    if need_record:
        fast = "WHEN r.any_out = 0 AND r.decisions = 1 AND r.first_in <= m.first_at THEN r.last_seq"
    else:
        fast = "WHEN r.any_out = 0 AND r.first_in <= m.first_at THEN -1"
    return f"CASE WHEN r.phone IS NULL THEN NULL {fast} ELSE {STANDING_AT_SQL} END"


@dataclass(frozen=True)
class MessageStatusReport:
    """One status callback as Twilio sent it (numbers without their `whatsapp:` prefix)."""

    message_sid: str
    status: str
    to_number: str
    from_number: str
    channel: MessageChannel
    received_at: str  # when it arrived here (UTC, ISO-8601 with microseconds)
    error_code: int | None = None
    account_sid: str | None = None
    business: str | None = None  # the business whose number sent it; None: not one of ours


@dataclass(frozen=True)
class UnconsentedMessage:
    """A message first reported when its recipient had no opt-in in force for the business."""

    message_sid: str
    to_number: str
    from_number: str
    channel: str
    first_status: str
    first_at: str
    breach: Breach
    opt_out_at: str | None  # the opt-out in force (after_opt_out), else None
    opt_out_seq: int | None  # its chain record

    def seconds_after_opt_out(self) -> float | None:
        """How long after the opt-out the message was first reported, in seconds."""
        if self.opt_out_at is None:
            return None
        return seconds_between(self.opt_out_at, self.first_at)


def _parse(moment: str) -> dt.datetime:
    return dt.datetime.fromisoformat(moment)  # '...Z' is read as UTC from Python 3.11 on


class MessageStore(Protocol):
    """What this module needs of a consent store (both backends have it)."""

    async def _bulk_side_writes(self, writes: Sequence[SideWrite]) -> None: ...

    def _start_bulk_side_writes(self, writes: Sequence[SideWrite]) -> asyncio.Future[None]: ...

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...


def status_writes(report: MessageStatusReport) -> list[SideWrite]:
    """The two idempotent inserts of one status callback."""
    return [
        (
            _INSERT_STATUS,
            (
                report.message_sid,
                report.status,
                report.error_code,
                report.to_number,
                report.from_number,
                report.channel,
                report.account_sid,
                report.business,
                report.received_at,
            ),
        ),
        (
            _INSERT_MESSAGE,
            (
                report.message_sid,
                report.business,
                report.to_number,
                report.from_number,
                report.channel,
                report.status,
                report.received_at,
            ),
        ),
    ]


async def record_message_status(store: MessageStore, report: MessageStatusReport) -> None:
    """Keep a status durably; a status already kept for that message changes nothing."""
    await store._bulk_side_writes(status_writes(report))


def start_keeping_status(store: MessageStore, report: MessageStatusReport) -> asyncio.Future[None]:
    """`record_message_status` without a coroutine (the status webhook's fast path,
    ivr.twilio.status_protocol): a future resolved once the status is kept, or failed as
    `record_message_status` raises. StoreUnavailable at once if the store is closed."""
    return store._start_bulk_side_writes(status_writes(report))


async def message_statuses(store: MessageStore, message_sid: str) -> list[tuple[Any, ...]]:
    """Every status kept for a message, in the order they arrived."""
    rows = await store._fetchall(
        "SELECT message_sid, status, error_code, to_number, from_number, channel, account_sid,"
        " business, received_at FROM message_statuses WHERE message_sid = ? ORDER BY received_at, status",
        (message_sid,),
    )
    return [tuple(row) for row in rows]


async def count_message_statuses(store: MessageStore) -> tuple[int, int]:
    """(statuses, messages) kept."""
    statuses = await store._fetchall("SELECT count(*) FROM message_statuses")
    messages = await store._fetchall("SELECT count(*) FROM messages")
    return int(statuses[0][0]), int(messages[0][0])


# One listed message as read: sid, to, from, channel, first status, first reported at, then the
# standing record's action, time and seq (all three None when the recipient never opted in).
UnconsentedRow = tuple[str, str, str, str, str, str, str | None, str | None, int | None]


def _listing_sql() -> str:
    # `c` keeps only each message's SID and standing, from indexes alone (the messages' other
    # columns are read for the listed ones only): 2.1 s against 2.9 s of CPU over 266,540 messages.
    return (
        f"WITH {RECIPIENTS_CTE}, c AS MATERIALIZED (SELECT m.message_sid AS sid,"
        f" {standing_sql(False)} AS standing_seq FROM messages m LEFT JOIN r ON r.phone = m.to_number"
        " WHERE m.business = ? AND m.first_at >= ? AND m.first_at < ?)"
        " SELECT m.message_sid, m.to_number, m.from_number, m.channel, m.first_status, m.first_at,"
        " e.action, e.recorded_at, e.seq, (SELECT count(*) FROM c) FROM c"
        " LEFT JOIN events e ON e.seq = c.standing_seq JOIN messages m ON m.message_sid = c.sid"
        " WHERE c.standing_seq IS NULL OR e.action = 'opt_out' ORDER BY m.first_at, m.message_sid"
    )


async def unconsented_rows(
    store: MessageStore, business: str, since: str | None = None, until: str | None = None
) -> tuple[int, list[UnconsentedRow]]:
    """(messages of the business first reported in [since, until), the unconsented ones among
    them as rows, oldest first): one read, with the count carried on each row; a second (the
    count alone) only when nothing is listed."""
    rows = await store._fetchall(_listing_sql(), (business, business, since or "0000", until or "9999"))
    if not rows:
        return await count_messages(store, business, since, until), []
    return int(rows[0][9]), [tuple(row[:9]) for row in rows]


def message_from_row(row: UnconsentedRow) -> UnconsentedMessage:
    """The record of one listed row."""
    sid, to, sender, channel, first_status, first_at, action, opt_out_at, seq = row
    after = action == "opt_out"
    return UnconsentedMessage(
        str(sid),
        str(to),
        str(sender),
        str(channel),
        str(first_status),
        str(first_at),
        "after_opt_out" if after else "never_opted_in",
        str(opt_out_at) if after else None,
        int(seq) if after and seq is not None else None,
    )


def seconds_between(earlier: str, later: str) -> float:
    """Seconds from one stored time to another, to the millisecond."""
    return round((_parse(later) - _parse(earlier)).total_seconds(), 3)


async def unconsented_messages(
    store: MessageStore, business: str, since: str | None = None, until: str | None = None
) -> list[UnconsentedMessage]:
    """Messages of the business first reported in [since, until) whose recipient had not opted
    in, or had opted out, at that moment; oldest first."""
    _, rows = await unconsented_rows(store, business, since, until)
    return [message_from_row(row) for row in rows]


async def count_messages(store: MessageStore, business: str, since: str | None, until: str | None) -> int:
    """How many messages of the business were first reported in [since, until)."""
    rows = await store._fetchall(
        "SELECT count(*) FROM messages WHERE business = ? AND first_at >= ? AND first_at < ?",
        (business, since or "0000", until or "9999"),
    )
    return int(rows[0][0])
