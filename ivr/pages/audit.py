"""Auditor pages at /audit: find decisions, prove one (receipt with chain proof), and list
decisions whose evidence is incomplete. Read-only; auditors and managers.

Results are paged by record seq (keyset: a page is the decisions after the last seq of the
one before), so no row is shown twice or skipped however the log grows. Demo and simulated
decisions are badged and left out unless asked for ("include"), as `ivr export` leaves demo
ones out. A download pinned to a record (`through`) can be proven: /audit/export.manifest
answers the manifest `ivr export -o` writes, computed over the same bytes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from consent_store import ACTIONS, ConsentStore, DecisionRow, ExportFilter, event_hash
from consent_store.phone import is_e164_format
from ivr import __version__
from ivr.evidence.event_text import describe_event
from ivr.evidence.export import (
    CHUNK_ROWS,
    EXPORT_FORMATS,
    ExportFormat,
    parse_timestamp,
    render_header,
    render_rows,
    write_export,
)
from ivr.evidence.manifest import MANIFEST_SUFFIX, ExportManifest
from ivr.exceptions import NotAPhoneNumber
from ivr.pages.auth import SessionUser, requires, template_user
from ivr.pages.web import templates
from ivr.phone_input import normalise_typed_phone
from ivr.recordings import playback
from ivr.recordings.fetch import fetcher_of
from ivr.recordings.incomplete import missing_recordings
from ivr.recordings.playback import receipt_audio
from ivr.runtime import request_runtime

PAGE_SIZE = 200
RECORDING_GRACE_MINUTES = 15


def _filter(
    query: dict[str, str], user: SessionUser, region: str | None = None
) -> tuple[ExportFilter, list[str]]:
    """An ExportFilter from the search form, limited to the user's businesses, and what was wrong.

    A phone may be typed as a person writes it (`+1 415 555-0123`, or with IVR_DEFAULT_REGION
    `(415) 555-0123`); a stored value in E.164 form is searched as it is."""
    problems: list[str] = []
    business = query.get("business") or None
    if business is not None and not user.may_see(business):
        problems.append(f"no business named {business!r}")
    phone = query.get("phone", "").strip() or None
    if phone is not None and not is_e164_format(phone):
        try:
            phone = normalise_typed_phone(phone, region)
        except NotAPhoneNumber as exc:
            problems.append(f"phone {exc}")
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
    # As `ivr export`: a business named is shown whether demo or not.
    include = query.get("include") == "1"
    where = ExportFilter(
        business=business,
        businesses=user.businesses,
        action=action,  # type: ignore[arg-type]
        since=times["since"],
        until=times["until"],
        call_sid=query.get("call_sid", "").strip() or None,
        phone=phone if not problems else None,
        include_demo=include or business is not None,
        simulated=None if include else False,
        unattested=query.get("unattested") == "1",
    )
    return where, problems


def _seq(query: dict[str, str], name: str, problems: list[str]) -> int | None:
    """A record number from the query (`after`, `through`), or None; a bad one is a problem."""
    value = query.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or len(value) > 18:
        problems.append(f"{name} {value[:20]!r} is not a record number")
        return None
    return int(value)


async def _simulated_seqs(store: ConsentStore, where: ExportFilter, rows: list[DecisionRow]) -> set[int]:
    """Which of a page's rows are simulated decisions (their flag is in the hashed data only)."""
    if not rows or where.simulated is False:
        return set()
    last, found = rows[-1].seq, set()
    only = dataclasses.replace(where, simulated=True, after_seq=rows[0].seq - 1)
    async with contextlib.aclosing(store.export_decisions(only)) as flagged:
        async for row in flagged:
            if row.seq > last:
                break
            found.add(row.seq)
    return found


@requires("auditor", "manager")
async def search(request: Request, user: SessionUser) -> Response:
    store = request_runtime(request).store
    query = dict(request.query_params)
    where, problems = _filter(query, user, request_runtime(request).settings.default_region)
    after = _seq(query, "after", problems)
    rows: list[DecisionRow] = []
    total = before = head = 0
    more = False
    simulated: set[int] = set()
    searched = any(k != "after" for k in query)
    if searched and not problems:
        head = await store.event_count()  # downloads are pinned here, so their manifest holds
        total = await store.count_decisions(where)
        page = dataclasses.replace(where, after_seq=after)
        if after is not None:
            before = total - await store.count_decisions(page)
        async with contextlib.aclosing(store.export_decisions(page)) as found:
            async for row in found:
                if len(rows) == PAGE_SIZE:
                    more = True
                    break
                rows.append(row)
        simulated = await _simulated_seqs(store, page, rows)
    kept = {k: v for k, v in query.items() if v and k not in ("format", "after", "through")}
    return templates.TemplateResponse(
        request,
        "audit_search.html",
        {
            "query": query,
            "problems": problems,
            "rows": rows,
            "total": total,
            "first": before + 1,
            "searched": searched,
            "businesses": [b for b in await store.list_businesses() if user.may_see(b.name)],
            "demo": {b.name for b in await store.list_businesses() if b.demo},
            "simulated": simulated,
            "actions": ACTIONS,
            "page_size": PAGE_SIZE,
            "next_query": urlencode(kept | {"after": str(rows[-1].seq)}) if more else None,
            "export_query": urlencode(kept),
            "pinned_query": urlencode(kept | {"through": str(head)}),
            "through": head,
            **template_user(user),
        },
    )


@requires("auditor", "manager")
async def receipt(request: Request, user: SessionUser) -> Response:
    store = request_runtime(request).store
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
            "demo": (await store.get_business(decision.business)).demo,
            "simulated": any(e["kind"] == "decision" and e["data"].get("simulated") is True for e in events),
            "audio": await receipt_audio(request, request_runtime(request), call_sid),
            **template_user(user),
        },
    )


_MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson",
    "receipts": "application/x-ndjson",
}


# A download's format, filter and the record it is pinned to (None: the head when read).
Download = tuple[ExportFormat, ExportFilter, int | None]


def _download(request: Request, user: SessionUser) -> Download | Response:
    """A download's format, filter and pinned record (`through`), or the response refusing it."""
    query = dict(request.query_params)
    fmt = query.get("format", "csv")
    if fmt not in EXPORT_FORMATS:
        return PlainTextResponse(f"Unknown format {fmt!r}: use csv, jsonl or receipts.", status_code=400)
    where, problems = _filter(query, user, request_runtime(request).settings.default_region)
    through = _seq(query, "through", problems)
    if where.business is not None and not user.may_see(where.business):
        return PlainTextResponse(f"No business named {where.business!r}.", status_code=404)
    if problems:
        return PlainTextResponse("; ".join(problems), status_code=400)
    return fmt, where, through


def _file_name(fmt: str, through: int | None) -> str:
    extension = "csv" if fmt == "csv" else "jsonl"
    if through is not None:  # the same name for the same bytes: the manifest names it
        return f"consent-{fmt}-through-{through}.{extension}"
    return f"consent-{fmt}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.{extension}"


@requires("auditor", "manager")
async def export(request: Request, user: SessionUser) -> Response:
    """The search's decisions as a file, streamed: the same bytes `ivr export` writes."""
    download = _download(request, user)
    if isinstance(download, Response):
        return download
    fmt, where, through = download
    store = request_runtime(request).store
    pinned = dataclasses.replace(where, through_seq=through)

    async def body() -> AsyncIterator[bytes]:
        yield render_header(fmt)
        chunk: list[DecisionRow] = []
        async with contextlib.aclosing(store.export_decisions(pinned)) as rows:
            async for row in rows:
                chunk.append(row)
                if len(chunk) == CHUNK_ROWS:
                    yield render_rows(chunk, fmt)
                    chunk.clear()
        if chunk:
            yield render_rows(chunk, fmt)

    return StreamingResponse(
        body(),
        media_type=_MEDIA[fmt],
        headers={
            "Content-Disposition": f'attachment; filename="{_file_name(fmt, through)}"',
            "Cache-Control": "no-store",
        },
    )


class _Digest:
    """A sink that keeps only the SHA-256 and size of what is written (write_export's `out`)."""

    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        return len(data)

    def flush(self) -> None:
        pass


@requires("auditor", "manager")
async def export_manifest(request: Request, user: SessionUser) -> Response:
    """The manifest of the download with the same query, pinned to record `through`: the JSON
    `ivr export -o FILE` writes beside FILE, computed over the same bytes, for `ivr verify --export`."""
    download = _download(request, user)
    if isinstance(download, Response):
        return download
    fmt, where, through = download
    if through is None:
        return PlainTextResponse("A manifest needs the record the download is pinned to: through=N.", 400)
    store = request_runtime(request).store
    heads: list[tuple[int, str | None]] = []
    pinned = dataclasses.replace(where, through_seq=through)
    rows = store.export_decisions(pinned, on_snapshot=lambda n, h: heads.append((n, h)))
    result = await write_export(rows, _Digest(), fmt)  # type: ignore[arg-type]
    [(seq, head)] = heads
    if head is None:
        return PlainTextResponse(f"There is no record {through} in the log.", status_code=404)
    name = _file_name(fmt, through)
    manifest = ExportManifest.for_export(Path(name), fmt, where, result, (seq, head), __version__)
    return JSONResponse(
        dataclasses.asdict(manifest),
        headers={
            "Content-Disposition": f'attachment; filename="{name}{MANIFEST_SUFFIX}"',
            "Cache-Control": "no-store",
        },
    )


@requires("auditor", "manager")
async def incomplete(request: Request, user: SessionUser) -> Response:
    """Decisions without archived audio and why (ivr/recordings/incomplete.py), of the user's
    businesses only (filtered in the query, so another business's rows never count)."""
    fetcher = fetcher_of(request.app)
    rows = await missing_recordings(
        request_runtime(request).store,
        fetcher.failures() if fetcher is not None else [],
        user.businesses,
        RECORDING_GRACE_MINUTES,
        archiving=fetcher is not None and fetcher.deps.credentials.configured,
    )
    return templates.TemplateResponse(
        request,
        "audit_incomplete.html",
        {
            "rows": rows,
            "grace": RECORDING_GRACE_MINUTES,
            "archiving": fetcher is not None and fetcher.deps.credentials.configured,
            **template_user(user),
        },
    )


routes = [
    Route("/audit", search, methods=["GET"]),
    Route("/audit/receipt", receipt, methods=["GET"]),
    Route("/audit/incomplete", incomplete, methods=["GET"]),
    *playback.routes,
    Route("/audit/export", export, methods=["GET"]),
    Route("/audit/export.manifest", export_manifest, methods=["GET"]),
]
