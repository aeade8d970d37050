"""Messages sent without consent: the /manage/compliance page and the report `ivr compliance` prints.

A message counts when its first status callback arrived while its recipient had no opt-in in
force for the sending business: never opted in (no opt-in or opt-out on record before it), or
after an opt-out (by phone, WhatsApp, SMS or another system), with how long after. The
standing compared is the one `GET /api/consent` answers, at the moment of the first report:
what the sender should have asked before sending. Read-only; managers and auditors, each
limited to their businesses.
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from consent_store import StoreError
from ivr.compliance_report import (
    REASONS,
    ComplianceReport,
    after_text,
    compliance_report,
    report_json_text,
    report_table,
)
from ivr.evidence.export import parse_period
from ivr.pages.auth import SessionUser, requires, template_user
from ivr.pages.web import templates
from ivr.runtime import request_runtime

# The report itself lives in ivr/compliance_report.py (the command needs no Starlette); these
# names stay importable from here.
__all__ = [
    "REASONS",
    "ComplianceReport",
    "after_text",
    "compliance_report",
    "report_json_text",
    "report_table",
    "routes",
]


@requires("manager", "auditor")
async def compliance_page(request: Request, user: SessionUser) -> Response:
    query = request.query_params
    try:
        since, until = parse_period(query.get("since", "").strip(), query.get("until", "").strip())
    except ValueError as exc:
        return PlainTextResponse(str(exc), status_code=400)
    name = query.get("business", "")
    store = request_runtime(request).store
    try:
        if not user.may_see(name):
            raise StoreError("not this user's business")  # answered like one that does not exist
        report = await compliance_report(store, name, since, until)
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
