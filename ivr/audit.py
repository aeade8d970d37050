"""Auditor pages at /audit: find decisions, prove one (receipt with chain proof), and list
decisions whose evidence is incomplete. Read-only; auditors and managers."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from consent_store import ACTIONS, DecisionRow, ExportFilter, event_hash
from consent_store.phone import is_e164_format
from ivr.auth import SessionUser, requires, template_user
from ivr.event_text import describe_event
from ivr.export import CHUNK_ROWS, EXPORT_FORMATS, parse_timestamp, render_header, render_rows
from ivr.runtime import Runtime
from ivr.web import templates

MAX_RESULTS = 200
RECORDING_GRACE_MINUTES = 15


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _filter(query: dict[str, str], user: SessionUser) -> tuple[ExportFilter, list[str]]:
    """An ExportFilter from the search form, limited to the user's businesses, and what was wrong."""
    problems: list[str] = []
    business = query.get("business") or None
    if business is not None and not user.may_see(business):
        problems.append(f"no business named {business!r}")
    phone = query.get("phone", "").strip() or None
    if phone is not None and not is_e164_format(phone):
        problems.append(f"phone {phone!r} is not E.164, e.g. +14155550123")
    action = query.get("action") or None
    if action is not None and action not in ACTIONS:
        problems.append(f"unknown action {action!r}")
    times = {}
    for name in ("since", "until"):
        value = query.get(name, "").strip()
        try:
            times[name] = parse_timestamp(value, name) if value else None
        except ValueError as exc:
            problems.append(str(exc))
            times[name] = None
    where = ExportFilter(
        business=business,
        businesses=user.businesses,
        action=action,  # type: ignore[arg-type]
        since=times["since"],
        until=times["until"],
        call_sid=query.get("call_sid", "").strip() or None,
        phone=phone if not problems else None,
        include_demo=True,
    )
    return where, problems


@requires("auditor", "manager")
async def search(request: Request, user: SessionUser) -> Response:
    store = _runtime(request).store
    query = dict(request.query_params)
    where, problems = _filter(query, user)
    rows: list[DecisionRow] = []
    total = 0
    if query and not problems:
        total = await store.count_decisions(where)
        async with contextlib.aclosing(store.export_decisions(where)) as found:
            async for row in found:
                rows.append(row)
                if len(rows) >= MAX_RESULTS:
                    break
    return templates.TemplateResponse(
        request,
        "audit_search.html",
        {
            "query": query,
            "problems": problems,
            "rows": rows,
            "total": total,
            "searched": bool(query),
            "businesses": [b for b in await store.list_businesses() if user.may_see(b.name)],
            "actions": ACTIONS,
            "max_results": MAX_RESULTS,
            "export_query": urlencode({k: v for k, v in query.items() if v and k != "format"}),
            **template_user(user),
        },
    )


@requires("auditor", "manager")
async def receipt(request: Request, user: SessionUser) -> Response:
    store = _runtime(request).store
    call_sid = request.query_params.get("call_sid", "")
    async with contextlib.aclosing(
        store.export_decisions(ExportFilter(call_sid=call_sid, include_demo=True))
    ) as f:
        decisions = [row async for row in f]
    if not decisions or not user.may_see(decisions[0].business):
        return PlainTextResponse(f"No decision recorded for call {call_sid!r}.", status_code=404)
    decision = decisions[0]
    proof = await store.chain_proof(decision.seq)
    assert proof is not None
    events = []
    for e in await store.events_for_call(call_sid):
        data = json.loads(e.body)["data"]
        events.append(
            {
                "seq": e.seq,
                "recorded_at": e.recorded_at,
                "kind": e.kind,
                "text": describe_event(e.kind, data),
                "data": data,
            }
        )
    later: list[DecisionRow] = []
    if decision.phone:
        async with contextlib.aclosing(
            store.export_decisions(
                ExportFilter(phone=decision.phone, business=decision.business, include_demo=True)
            )
        ) as f:
            later = [row async for row in f if row.seq > decision.seq]
    standing = await store.standing(decision.phone, decision.business) if decision.phone else None
    return templates.TemplateResponse(
        request,
        "audit_receipt.html",
        {
            "d": decision,
            "events": events,
            "proof": proof,
            "hash_ok": event_hash(proof.record.prev_hash, proof.record.body) == proof.record.hash,
            "linked_ok": proof.next_prev_hash in (None, proof.record.hash),
            "spoken": await store.spoken_text(decision.script_sha256),
            "later": later,
            "standing": standing,
            **template_user(user),
        },
    )


_MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
    "receipts": "application/x-ndjson",
}


@requires("auditor", "manager")
async def export(request: Request, user: SessionUser) -> Response:
    """The search's decisions as a file, streamed: the same bytes `ivr export` writes."""
    fmt = request.query_params.get("format", "csv")
    if fmt not in EXPORT_FORMATS:
        return PlainTextResponse(f"Unknown format {fmt!r}: use csv, jsonl or receipts.", status_code=400)
    where, problems = _filter(dict(request.query_params), user)
    if where.business is not None and not user.may_see(where.business):
        return PlainTextResponse(f"No business named {where.business!r}.", status_code=404)
    if problems:
        return PlainTextResponse("; ".join(problems), status_code=400)
    store = _runtime(request).store

    async def body() -> AsyncIterator[bytes]:
        yield render_header(fmt)
        chunk: list[DecisionRow] = []
        async with contextlib.aclosing(store.export_decisions(where)) as rows:
            async for row in rows:
                chunk.append(row)
                if len(chunk) == CHUNK_ROWS:
                    yield render_rows(chunk, fmt)
                    chunk.clear()
        if chunk:
            yield render_rows(chunk, fmt)

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    extension = "csv" if fmt == "csv" else "jsonl"
    return StreamingResponse(
        body(),
        media_type=_MEDIA[fmt],
        headers={
            "Content-Disposition": f'attachment; filename="consent-{fmt}-{stamp}.{extension}"',
            "Cache-Control": "no-store",
        },
    )


@requires("auditor", "manager")
async def incomplete(request: Request, user: SessionUser) -> Response:
    rows = [
        row
        for row in await _runtime(request).store.incomplete_evidence(RECORDING_GRACE_MINUTES)
        if user.may_see(row.business)
    ]
    return templates.TemplateResponse(
        request,
        "audit_incomplete.html",
        {"rows": rows, "grace": RECORDING_GRACE_MINUTES, **template_user(user)},
    )


routes = [
    Route("/audit", search, methods=["GET"]),
    Route("/audit/receipt", receipt, methods=["GET"]),
    Route("/audit/incomplete", incomplete, methods=["GET"]),
    Route("/audit/export", export, methods=["GET"]),
]
