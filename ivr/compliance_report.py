"""The messages a business sent without consent, as `ivr compliance` prints them and the page shows them.

Kept apart from the page (ivr/pages/compliance.py) so the command imports neither Starlette
nor the templates. The report holds the store's rows as read; records (UnconsentedMessage) are
built only where a person reads them (the table, the page), and the JSON is written straight
from the rows by orjson in one pass.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import orjson

from consent_store import ConsentStore
from consent_store.message_statuses import (
    UnconsentedMessage,
    UnconsentedRow,
    message_from_row,
    seconds_between,
    unconsented_rows,
)
from consent_store.writing import utc_now

REASONS = {
    "never_opted_in": "never opted in",
    "after_opt_out": "after an opt-out",
}


@dataclass(frozen=True)
class ComplianceReport:
    """What one check found for a business over [since, until)."""

    business: str
    since: str | None
    until: str | None
    as_of: str
    messages_checked: int
    # Not in the repr: asyncio.run's SIGINT handler reprs the main task, result included, when
    # it is put back (signal._int_to_enum), which cost 1.3 s for 14,000 messages.
    rows: tuple[UnconsentedRow, ...] = field(repr=False)

    @property
    def count(self) -> int:
        """How many messages were sent without consent."""
        return len(self.rows)

    @property
    def unconsented(self) -> tuple[UnconsentedMessage, ...]:
        """The listed messages as records, oldest first (built on each call)."""
        return tuple(message_from_row(row) for row in self.rows)


async def compliance_report(
    store: ConsentStore, business: str, since: str | None, until: str | None
) -> ComplianceReport:
    """Check the business's messages first reported in the range (UnknownBusiness if none such)."""
    found = await store.get_business(business)
    as_of = utc_now()
    checked, rows = await unconsented_rows(store, found.name, since, until)
    return ComplianceReport(found.name, since, until, as_of, checked, tuple(rows))


def after_text(seconds: float | None) -> str:
    """How long after the opt-out, in words a person reads at a glance ('3 d 04:05:06')."""
    if seconds is None:
        return ""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days} d {clock}" if days else clock


def _row_json(row: UnconsentedRow) -> dict[str, object]:
    sid, to, sender, channel, first_status, first_at, action, opt_out_at, seq = row
    after = action == "opt_out" and opt_out_at is not None
    return {
        "message_sid": sid,
        "to": to,
        "from": sender,
        "channel": channel,
        "first_status": first_status,
        "first_reported_at": first_at,
        "reason": "after_opt_out" if after else "never_opted_in",
        "opt_out_at": opt_out_at if after else None,
        "opt_out_record": seq if after else None,
        "seconds_after_opt_out": seconds_between(opt_out_at, first_at) if after and opt_out_at else None,
    }


def report_json_text(report: ComplianceReport) -> str:
    """The report as indented JSON, one message a line (the layout json.dumps(indent=2) gives the
    head and json.dumps each message). orjson encodes the messages in one call; its compact
    separators get their spaces back by three replaces, safe because no value can hold a quote
    (SIDs, E.164 numbers or sender IDs, Twilio's statuses, ISO times and fixed words, all checked
    when the callback arrived)."""
    head = json.dumps(
        {
            "business": report.business,
            "since": report.since,
            "until": report.until,
            "as_of": report.as_of,
            "messages_checked": report.messages_checked,
            "sent_without_consent": report.count,
        },
        ensure_ascii=False,
        indent=2,
    )[:-2]  # without the closing "\n}"
    if not report.rows:
        return head + ',\n  "messages": []\n}'
    rows = orjson.dumps([_row_json(row) for row in report.rows])[1:-1]
    rows = rows.replace(b'":', b'": ').replace(b',"', b', "').replace(b"},{", b"},\n    {")
    return head + ',\n  "messages": [\n    ' + rows.decode() + "\n  ]\n}"


def report_table(report: ComplianceReport) -> str:
    """The report as an aligned text table, a summary line first."""
    span = f"from {report.since or 'the start'} to {report.until or 'now'}"
    summary = (
        f"{report.business}: {report.count} of {report.messages_checked} messages "
        f"first reported {span} were sent without consent.\n"
    )
    if not report.rows:
        return summary
    header = ("first reported (UTC)", "to", "channel", "message", "reason", "after the opt-out")
    rows = [
        (
            m.first_at[:19],
            m.to_number,
            m.channel,
            m.message_sid,
            REASONS[m.breach],
            after_text(m.seconds_after_opt_out()),
        )
        for m in report.unconsented
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
    return summary + "\n".join(lines) + "\n"
