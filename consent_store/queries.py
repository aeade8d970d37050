"""SQL text shared by both backends (`?` placeholders; PostgreSQL's fetches translate them)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from consent_store.events import ExportFilter
from consent_store.writing import utc_iso

# Opt-outs are followed for this many days after an opt-in (quality figures) or after a
# recipient's first message (delivery figures).
FOLLOW_UP_DAYS = (7, 30)

# A decision's body is its canonical JSON (consent_store.chain: sorted keys, no spaces), the
# bytes its hash covers. A JSON string cannot hold an unescaped quote, so these texts occur in
# a body only as the key and value themselves, never inside a caller's or Twilio's text.
# "Does the body contain it" is written `replace(body, text, '') <> body`: the same, and
# case-sensitive, on SQLite and PostgreSQL (LIKE ignores case on SQLite, `_` is a wildcard).
SIMULATED_TEXT = '"simulated":true'
ATTESTED_A_TEXT = '"stir_verstat":"TN-Validation-Passed-A"'
CONTAINS = "replace(e.body, ?, '') <> e.body"


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
        ("e.seq > ?", where.after_seq),
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
    if where.simulated is not None:
        sql.append(CONTAINS if where.simulated else f"NOT {CONTAINS}")
        params.append(SIMULATED_TEXT)
    if where.unattested:
        sql.append(f"NOT {CONTAINS}")
        params.append(ATTESTED_A_TEXT)
    return " AND ".join(sql), params


def follow_up_counts(
    within_days: Callable[[str, str, int], str], start: str, end: str, ended: str, alias: str
) -> str:
    """SQL select columns, for each d of FOLLOW_UP_DAYS: `followed_d`, the rows whose `start`
    is at least d days old, and `{alias}_d`, those of them where `ended` holds and `end` is
    at most d days after `start`. Each column takes one `?`: `follow_up_cutoffs`, in order."""
    counts = []
    for days in FOLLOW_UP_DAYS:
        within = within_days(start, end, days)
        counts.append(f"count(*) FILTER (WHERE {start} <= ?) AS followed_{days}")
        counts.append(f"count(*) FILTER (WHERE {start} <= ? AND {ended} AND {within}) AS {alias}_{days}")
    return ", ".join(counts)


def follow_up_cutoffs(now: dt.datetime) -> list[str]:
    """The parameters of `follow_up_counts`' columns: `now` less d days (ISO-8601 UTC), twice each."""
    moments = [now - dt.timedelta(days=d) for d in FOLLOW_UP_DAYS for _ in range(2)]
    return [utc_iso(moment) for moment in moments]
