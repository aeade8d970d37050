"""The opt-in quality page at /manage/quality and its CSV: how callers respond to each script version.

Read-only; managers and auditors. Charts are inline SVG drawn on the server (no JavaScript).
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from consent_store import StoreError
from consent_store.stats import Period, QualityFigures
from ivr.evidence.export import parse_period
from ivr.pages.auth import SessionUser, requires, template_user
from ivr.pages.web import templates
from ivr.quality.delivery import delivery_label, delivery_row
from ivr.quality.report import figure_row, quality_csv, quality_flags, with_frequency_changes
from ivr.quality.svg import rate_bars, stacked_bars
from ivr.runtime import request_runtime


async def _figures(request: Request, user: SessionUser) -> QualityFigures | Response:
    """The figures the query asks for, or the 400/404 response saying what is wrong."""
    query = request.query_params
    try:
        since, until = parse_period(query.get("since", "").strip(), query.get("until", "").strip())
    except ValueError as exc:
        return PlainTextResponse(str(exc), status_code=400)
    store = request_runtime(request).store
    try:
        if not user.may_see(query.get("business", "")):
            raise StoreError("not this user's business")  # answered like one that does not exist
        business = await store.get_business(query.get("business", ""))
    except StoreError:
        return PlainTextResponse(f"No business named {query.get('business', '')!r}.", status_code=404)
    figures = await store.opt_in_quality(business.name, business.locales, Period(since, until))
    return await with_frequency_changes(store, figures, business.locales)


def _label(locale: str | None, version: int | None) -> str:
    return "language unknown" if locale is None else f"{locale} v{version}"


def _charts(figures: QualityFigures) -> tuple[str, str]:
    responses = stacked_bars(
        "How answered callers responded, per script version and locale",
        [
            (
                _label(s.locale, s.script_version),
                [
                    ("opt_in", s.opt_in),
                    ("declined", s.declined),
                    ("opt_out", s.opt_out),
                    ("hung_up", s.hung_up),
                    ("no_input", s.no_input),
                ],
            )
            for s in figures.scripts
        ],
    )
    regrets = rate_bars(
        "Opt-ins ended by an opt-out within 30 days, per script version and locale",
        [
            (_label(s.locale, s.script_version), s.opted_out_30d, s.followed_30d)
            for s in figures.scripts
            if s.locale is not None
        ],
    )
    return responses, regrets


@requires("manager", "auditor")
async def quality_page(request: Request, user: SessionUser) -> Response:
    figures = await _figures(request, user)
    if isinstance(figures, Response):
        return figures
    responses, regrets = _charts(figures)
    query = {k: v for k, v in request.query_params.items() if k in ("business", "since", "until") and v}
    return templates.TemplateResponse(
        request,
        "manage_quality.html",
        {
            "figures": figures,
            "rows": [(s, figure_row(s), _label(s.locale, s.script_version)) for s in figures.scripts],
            "delivery_rows": [(d, delivery_row(d), delivery_label(d)) for d in figures.delivery],
            "flags": quality_flags(figures),
            "responses_svg": responses,
            "regrets_svg": regrets,
            "since": request.query_params.get("since", ""),
            "until": request.query_params.get("until", ""),
            "csv_url": f"/manage/quality.csv?{urlencode(query)}",
            **template_user(user),
        },
    )


@requires("manager", "auditor")
async def quality_csv_download(request: Request, user: SessionUser) -> Response:
    figures = await _figures(request, user)
    if isinstance(figures, Response):
        return figures
    return Response(
        quality_csv(figures),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="opt-in-quality.csv"'},
    )


routes = [
    Route("/manage/quality", quality_page, methods=["GET"]),
    Route("/manage/quality.csv", quality_csv_download, methods=["GET"]),
]
