"""Opt-in quality figures of a business, aggregated in SQL per script version and locale.

What the log records is all there is: decisions (action, locale, script version, prompts
heard, seconds to decide), prompts played after a key press or a silence (language chosen,
re-prompts, the goodbye after the last attempt), call status callbacks (status, duration)
and script / message-type changes; simulated calls (`ivr call --record`) are left out.
Reads only. The SQL serves both backends: the dialect hooks here (`_json_text`,
`_within_days`, `_joined_text`, from consent_store.dialect) are SQLite's, and PostgresStore
sets PostgreSQL's over them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

from consent_store.backend import StoreBackend
from consent_store.delivery_stats import DeliveryFigures, delivery_figures
from consent_store.dialect import SQLITE
from consent_store.queries import follow_up_counts, follow_up_cutoffs
from consent_store.writing import utc_iso

# Call statuses of a call that never connected: the caller heard nothing.
UNANSWERED_STATUSES = ("no-answer", "busy", "failed", "canceled")
_NO_LOCALE, _NO_VERSION = "", 0  # NULL stand-ins, so groups join with plain "="


@dataclass(frozen=True)
class ScriptFigures:
    """How callers responded to one script version in one locale, over a date range.

    `locale` and `script_version` are None for calls whose language is unknown: a
    business with several locales whose caller left before deciding (the language
    chosen is recorded only with a decision).
    """

    locale: str | None
    script_version: int | None
    calls: int  # distinct CallSids with a decision, a prompt record or a call status
    unanswered: int  # no decision; status no-answer / busy / failed / canceled
    hung_up: int  # answered, no decision, and the caller left before the service said goodbye
    no_input: int  # answered, no decision: no (valid) key after the last attempt, so goodbye
    opt_in: int
    declined: int
    opt_out: int
    prompts_heard: int  # prompts played to answered calls (menus, re-prompts, repeats)
    median_seconds_to_decision: float | None  # from the answer to the key press, decided calls
    median_duration: float | None  # seconds, of decided calls with a `completed` status
    followed_7d: int  # opt-ins at least 7 days old
    opted_out_7d: int  # ... whose next opt-in/opt-out was an opt-out within 7 days
    followed_30d: int
    opted_out_30d: int

    @property
    def answered(self) -> int:
        return self.calls - self.unanswered

    @property
    def decided(self) -> int:
        return self.opt_in + self.declined + self.opt_out

    @property
    def undecided(self) -> int:
        """Answered calls without a decision: hung up, or no (valid) key."""
        return self.hung_up + self.no_input

    @property
    def prompts_per_call(self) -> float | None:
        return None if self.answered == 0 else self.prompts_heard / self.answered


@dataclass(frozen=True)
class MessageTypesChange:
    """The last message-types change of a business, and who opted in before it."""

    recorded_at: str
    message_types: tuple[str, ...]
    opted_in_before: int  # currently opted-in subjects whose opt-in predates the change


@dataclass(frozen=True)
class FrequencyChange:
    """A published script version that promised another frequency than the version before it."""

    locale: str
    version: int
    recorded_at: str
    previous: str
    frequency: str
    opted_in_before: int  # currently opted-in subjects whose opt-in predates the change


@dataclass(frozen=True)
class Period:
    """A stretch of recorded time (ISO-8601 UTC): `since` inclusive, `until` exclusive; None: open."""

    since: str | None = None
    until: str | None = None


EVER = Period()


@dataclass(frozen=True)
class QualityFigures:
    business: str
    since: str | None
    until: str | None
    as_of: str
    scripts: tuple[ScriptFigures, ...]
    message_types_change: MessageTypesChange | None
    # Filled by the caller, which can read the scripts' promised frequency (the store cannot).
    frequency_changes: tuple[FrequencyChange, ...] = ()
    # What happened to the messages sent under each version (status callbacks; delivery_stats).
    delivery: tuple[DeliveryFigures, ...] = ()


def _median(name: str, column: str, where: str) -> str:
    """SQL for a CTE `name`: the median of `column` over `placed` per locale and version."""
    ranked = (
        f"SELECT locale, version, {column} AS x,"
        f" row_number() OVER (PARTITION BY locale, version ORDER BY {column}) AS rn,"
        " count(*) OVER (PARTITION BY locale, version) AS n"
        f" FROM placed WHERE {where} AND {column} IS NOT NULL"
    )
    return (
        f" {name} AS (SELECT locale, version, avg(x) AS median FROM ({ranked}) r"
        " WHERE rn IN ((n + 1) / 2, (n + 2) / 2) GROUP BY locale, version)"
    )


class StatsMixin(StoreBackend):
    """Mixed into both stores, which provide `_fetchall`; the dialect hooks here are SQLite's
    (PostgresStore sets PostgreSQL's over them)."""

    _json_text = staticmethod(SQLITE.json_text)
    _within_days = staticmethod(SQLITE.within_days)
    _joined_text = staticmethod(SQLITE.joined_text)

    async def opt_in_quality(
        self, business: str, locales: Sequence[str], period: Period = EVER, now: dt.datetime | None = None
    ) -> QualityFigures:
        """Calls, outcomes, prompts heard, times and later opt-outs per script version and locale.

        Over `period` (recorded_at, ISO-8601 UTC). `locales` are the
        business's: with one, calls without a decision are put under it and the version
        in force when they started; with several, their language is unknown.
        """
        moment = now or dt.datetime.now(dt.UTC)
        since, until = period.since, period.until
        low, high = since or "0000", until or "9999"
        single = locales[0] if len(locales) == 1 else None
        cutoffs = follow_up_cutoffs(moment)
        rows = await self._fetchall(
            self._figures_sql(), (business, low, high, business, *cutoffs, single, business, single)
        )
        scripts = []
        for locale, version, *counts, heard, to_decide, median, f7, o7, f30, o30 in rows:
            calls, unanswered, hung_up, no_input, opt_in, declined, opt_out = (int(v) for v in counts)
            scripts.append(
                ScriptFigures(
                    str(locale) or None,
                    int(version) or None,
                    calls,
                    unanswered,
                    hung_up,
                    no_input,
                    opt_in,
                    declined,
                    opt_out,
                    int(heard or 0),
                    None if to_decide is None else round(float(to_decide), 1),
                    None if median is None else float(median),
                    *(int(v or 0) for v in (f7, o7, f30, o30)),
                )
            )
        scripts.sort(key=lambda s: (s.locale is None, s.locale or "", s.script_version or 0))
        return QualityFigures(
            business,
            since,
            until,
            utc_iso(moment),
            tuple(scripts),
            await self._message_types_change(business),
            delivery=await delivery_figures(self, business, since, until, moment),
        )

    def _figures_sql(self) -> str:
        field, status = self._json_text, self._json_text("body", "data", "status")
        unanswered = ", ".join(f"'{s}'" for s in UNANSWERED_STATUSES)
        follow_ups = follow_up_counts(
            self._within_days, "f.recorded_at", "n.recorded_at", "n.action = 'opt_out'", "opted_out"
        )
        in_call = "kind IN ('decision', 'prompt')"
        # Simulated calls (`ivr call --record`) are evidence, not callers: none of their events count.
        # Decisions not made on a call (a STOP by WhatsApp or SMS, an opt-out another system
        # reported: data.channel set) are no calls either; they still end opt-ins below.
        real_call = (
            " AND NOT EXISTS (SELECT 1 FROM events s WHERE s.call_sid = events.call_sid"
            f" AND s.kind = 'decision' AND {field('s.body', 'data', 'simulated')} IS NOT NULL)"
            f" AND {field('body', 'data', 'channel')} IS NULL"
        )
        return (
            # One pass over the business's events in the range: decisions, prompts, call statuses.
            "WITH base AS MATERIALIZED (SELECT seq, call_sid, subject, kind, action, recorded_at,"
            f" CASE WHEN {in_call} THEN {field('body', 'data', 'locale')} END AS locale,"
            f" CASE WHEN {in_call} THEN CAST({field('body', 'data', 'script_version')} AS INTEGER) END"
            " AS version,"
            f" CASE WHEN {in_call} THEN CAST({field('body', 'data', 'prompts_heard')} AS INTEGER) END"
            " AS heard,"
            f" CASE WHEN kind = 'prompt' AND {field('body', 'data', 'prompt')} = 'goodbye' THEN 1 ELSE 0 END"
            " AS gave_up,"
            f" CASE WHEN kind = 'decision' THEN CAST({field('body', 'data', 'seconds_to_decision')} AS REAL)"
            " END AS to_decide,"
            f" CASE WHEN kind = 'call_status' THEN {status} END AS status,"
            f" CASE WHEN kind = 'call_status' THEN CAST({field('body', 'data', 'duration')} AS INTEGER)"
            " END AS duration FROM events WHERE business = ?"
            " AND kind IN ('decision', 'prompt', 'call_status')"
            " AND call_sid IS NOT NULL AND recorded_at >= ? AND recorded_at < ?"
            f"{real_call}),"
            # Each opt-in is ended by the subject's next opt-in or opt-out for the business (if
            # any), found through the events_standing index; only an opt-out ending it counts.
            " ins AS (SELECT b.seq, b.subject, b.recorded_at, b.locale, b.version, (SELECT min(o.seq)"
            " FROM events o WHERE o.subject = b.subject AND o.business = ? AND o.kind = 'decision'"
            " AND o.action IN ('opt_in', 'opt_out') AND o.seq > b.seq"
            f" AND {field('o.body', 'data', 'simulated')} IS NULL) AS next_seq"
            " FROM base b WHERE b.action = 'opt_in'),"
            f" follow AS (SELECT f.locale, f.version, {follow_ups}"
            " FROM ins f LEFT JOIN events n ON n.seq = f.next_seq GROUP BY f.locale, f.version),"
            " calls AS (SELECT call_sid, max(action) AS action, max(locale) AS locale,"
            " max(version) AS version, max(heard) AS heard, max(gave_up) AS gave_up,"
            " max(to_decide) AS to_decide,"
            " max(CASE WHEN status = 'completed' THEN duration END) AS duration,"
            f" max(CASE WHEN status IN ({unanswered}) THEN 1 ELSE 0 END) AS unanswered,"
            " min(recorded_at) AS first_at FROM base GROUP BY call_sid),"
            # A call without a decision: the single locale, and the version in force when it began.
            # An answered call with no record of its prompts heard only the first one.
            " placed AS MATERIALIZED (SELECT action, duration, unanswered, gave_up, to_decide,"
            " COALESCE(heard, 1 - unanswered) AS heard,"
            f" COALESCE(locale, ?, '{_NO_LOCALE}') AS locale,"
            " COALESCE(version, (SELECT max(s.version) FROM scripts s WHERE s.business = ?"
            f" AND s.locale = ? AND s.created_at <= calls.first_at), {_NO_VERSION}) AS version FROM calls),"
            + _median("durations", "duration", "action IS NOT NULL")
            + ","
            + _median("decide_times", "to_decide", "action IS NOT NULL")
            + ","
            " totals AS (SELECT locale, version, count(*) AS calls,"
            " count(*) FILTER (WHERE action IS NULL AND unanswered = 1) AS unanswered,"
            " count(*) FILTER (WHERE action IS NULL AND unanswered = 0 AND gave_up = 0) AS hung_up,"
            " count(*) FILTER (WHERE action IS NULL AND unanswered = 0 AND gave_up = 1) AS no_input,"
            " count(*) FILTER (WHERE action = 'opt_in') AS opt_in,"
            " count(*) FILTER (WHERE action = 'declined') AS declined,"
            " count(*) FILTER (WHERE action = 'opt_out') AS opt_out,"
            " sum(heard) AS heard FROM placed GROUP BY locale, version)"
            " SELECT t.locale, t.version, t.calls, t.unanswered, t.hung_up, t.no_input, t.opt_in,"
            " t.declined, t.opt_out, t.heard, dt.median, dm.median, f.followed_7, f.opted_out_7,"
            " f.followed_30, f.opted_out_30 FROM totals t"
            " LEFT JOIN decide_times dt ON dt.locale = t.locale AND dt.version = t.version"
            " LEFT JOIN durations dm ON dm.locale = t.locale AND dm.version = t.version"
            " LEFT JOIN follow f ON f.locale = t.locale AND f.version = t.version"
        )

    async def _message_types_change(self, business: str) -> MessageTypesChange | None:
        # Audit events have no CallSid: the events_by_call index finds them without a scan.
        change = self._json_text("body", "data", "change")
        rows = await self._fetchall(
            "SELECT seq, recorded_at, body FROM events WHERE call_sid IS NULL AND kind = 'business'"
            f" AND business = ? AND {change} = 'message_types' ORDER BY seq DESC LIMIT 1",
            (business,),
        )
        if not rows:
            return None
        seq, recorded_at, body = rows[0]
        types = tuple(json.loads(body)["data"]["message_types"])
        return MessageTypesChange(str(recorded_at), types, await self.opted_in_before(business, seq))

    async def opted_in_before(self, business: str, seq: int) -> int:
        """Subjects currently opted in to the business whose opt-in is older than record `seq`."""
        counted = await self._fetchall(
            "SELECT count(*) FROM (SELECT subject, max(seq) AS last FROM events"
            " WHERE subject IS NOT NULL AND business = ? AND kind = 'decision'"
            " AND action IN ('opt_in', 'opt_out') GROUP BY subject) s"
            " JOIN events e ON e.seq = s.last WHERE e.action = 'opt_in' AND e.seq < ?",
            (business, seq),
        )
        return int(counted[0][0])

    async def script_published_at(self, business: str, locale: str, version: int) -> tuple[int, str] | None:
        """The chain record (seq, time) that published a script version."""
        rows = await self._fetchall(
            "SELECT seq, recorded_at FROM events WHERE idempotency_key = ?",
            (f"script:{business}:{locale}:{version}",),
        )
        return (int(rows[0][0]), str(rows[0][1])) if rows else None
