"""Messages sent without consent: the /manage/compliance page and the report `ivr compliance` prints.

A message counts when its first status callback arrived while its recipient had no opt-in in
force for the sending business: never opted in (no opt-in or opt-out on record before it), or
after an opt-out (by phone, WhatsApp, SMS or another system), with how long after. The
standing compared is the one `GET /api/consent` answers, at the moment of the first report:
what the sender should have asked before sending. Read-only; managers and auditors, each
limited to their businesses.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from consent_store import ConsentStore, StoreError
from consent_store.message_statuses import UnconsentedMessage, count_messages, unconsented_messages
from ivr.evidence.export import parse_timestamp
from ivr.pages.auth import SessionUser, requires, template_user
from ivr.pages.web import templates
from ivr.runtime import Runtime

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
    unconsented: tuple[UnconsentedMessage, ...] = field(repr=False)


async def compliance_report(
    store: ConsentStore, business: str, since: str | None, until: str | None
) -> ComplianceReport:
    """Check the business's messages first reported in the range (UnknownBusiness if none such)."""
    found = await store.get_business(business)
    as_of = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    checked = await count_messages(store, found.name, since, until)
    listed = await unconsented_messages(store, found.name, since, until)
    return ComplianceReport(found.name, since, until, as_of, checked, tuple(listed))


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


def message_json(message: UnconsentedMessage) -> dict[str, Any]:
    return {
        "message_sid": message.message_sid,
        "to": message.to_number,
        "from": message.from_number,
        "channel": message.channel,
        "first_status": message.first_status,
        "first_reported_at": message.first_at,
        "reason": message.breach,
        "opt_out_at": message.opt_out_at,
        "opt_out_record": message.opt_out_seq,
        "seconds_after_opt_out": message.seconds_after_opt_out(),
    }


def report_json(report: ComplianceReport) -> dict[str, Any]:
    return {
        "business": report.business,
        "since": report.since,
        "until": report.until,
        "as_of": report.as_of,
        "messages_checked": report.messages_checked,
        "sent_without_consent": len(report.unconsented),
        "messages": [message_json(m) for m in report.unconsented],
    }


def report_json_text(report: ComplianceReport) -> str:
    """report_json as indented JSON with one message a line: the C encoder does the messages
    (json's indent= would take the pure-Python encoder, 6 s for 14,000 messages)."""
    data = report_json(report)
    messages = data.pop("messages")
    head = json.dumps(data, ensure_ascii=False, indent=2)[:-2]  # without the closing "\n}"
    if not messages:
        return head + ',\n  "messages": []\n}'
    # One encoder call for them all; no value can hold "}, {" (SIDs, E.164 numbers or sender IDs,
    # Twilio's statuses, ISO times and fixed words, all checked when the callback arrived).
    rows = json.dumps(messages, ensure_ascii=False)[1:-1].replace("}, {", "},\n    {")
    return head + ',\n  "messages": [\n    ' + rows + "\n  ]\n}"


def report_table(report: ComplianceReport) -> str:
    """The report as an aligned text table, a summary line first."""
    span = f"from {report.since or 'the start'} to {report.until or 'now'}"
    summary = (
        f"{report.business}: {len(report.unconsented)} of {report.messages_checked} messages "
        f"first reported {span} were sent without consent.\n"
    )
    if not report.unconsented:
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


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


@requires("manager", "auditor")
async def compliance_page(request: Request, user: SessionUser) -> Response:
    query = request.query_params
    times: dict[str, str | None] = {}
    for name in ("since", "until"):
        value = query.get(name, "").strip()
        try:
            times[name] = parse_timestamp(value, name) if value else None
        except ValueError as exc:
            return PlainTextResponse(str(exc), status_code=400)
    name = query.get("business", "")
    store = _runtime(request).store
    try:
        if not user.may_see(name):
            raise StoreError("not this user's business")  # answered like one that does not exist
        report = await compliance_report(store, name, times["since"], times["until"])
    except StoreError:
        return PlainTextResponse(f"No business named {name[:80]!r}.", status_code=404)
    kept = {k: v for k, v in query.items() if k in ("business", "since", "until") and v}
    return templates.TemplateResponse(
        request,
        "compliance.html",
        {
            "report": report,
            "rows": [
                (m, REASONS[m.breach], after_text(m.seconds_after_opt_out())) for m in report.unconsented
            ],
            "since": query.get("since", ""),
            "until": query.get("until", ""),
            "query": urlencode(kept),
            **template_user(user),
        },
    )


routes = [Route("/manage/compliance", compliance_page, methods=["GET"])]
