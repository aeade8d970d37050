"""Auditor pages at /audit: find decisions, prove one (receipt with chain proof), and list
decisions whose evidence is incomplete. Read-only; auditors and managers."""

from __future__ import annotations

import contextlib
import json

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from consent_store import ACTIONS, DecisionRow, ExportFilter, event_hash
from consent_store.phone import is_e164
from ivr.auth import SessionUser, requires, template_user
from ivr.export import parse_timestamp
from ivr.runtime import Runtime
from ivr.web import templates

MAX_RESULTS = 200
RECORDING_GRACE_MINUTES = 15


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _filter(query: dict[str, str]) -> tuple[ExportFilter, list[str]]:
    """An ExportFilter from the search form, and what was wrong with it."""
    problems: list[str] = []
    phone = query.get("phone", "").strip() or None
    if phone is not None and not is_e164(phone):
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
        business=query.get("business") or None,
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
    where, problems = _filter(query)
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
            "businesses": await store.list_businesses(),
            "actions": ACTIONS,
            "max_results": MAX_RESULTS,
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
    if not decisions:
        return PlainTextResponse(f"No decision recorded for call {call_sid!r}.", status_code=404)
    decision = decisions[0]
    proof = await store.chain_proof(decision.seq)
    assert proof is not None
    events = [
        {"seq": e.seq, "recorded_at": e.recorded_at, "kind": e.kind, "data": json.loads(e.body)["data"]}
        for e in await store.events_for_call(call_sid)
    ]
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


@requires("auditor", "manager")
async def incomplete(request: Request, user: SessionUser) -> Response:
    rows = await _runtime(request).store.incomplete_evidence(RECORDING_GRACE_MINUTES)
    return templates.TemplateResponse(
        request,
        "audit_incomplete.html",
        {"rows": rows, "grace": RECORDING_GRACE_MINUTES, **template_user(user)},
    )


routes = [
    Route("/audit", search, methods=["GET"]),
    Route("/audit/receipt", receipt, methods=["GET"]),
    Route("/audit/incomplete", incomplete, methods=["GET"]),
]
