"""Server-rendered pages: templates, static files and the home page."""

from __future__ import annotations

import jinja2
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ivr import __version__
from ivr.runtime import Runtime

templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.PackageLoader("ivr", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
)
templates.env.globals["version"] = __version__


def base_url(request: Request) -> str:
    runtime: Runtime = request.app.state.runtime
    return runtime.settings.public_url or f"{request.url.scheme}://{request.url.netloc}"


async def home(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    businesses = await runtime.store.list_businesses()
    return templates.TemplateResponse(
        request,
        "home.html",
        {
            "demo_businesses": [b for b in businesses if b.demo],
            "business_count": len(businesses),
            "base_url": base_url(request),
            "local_token": runtime.local_token,
        },
    )


routes = [
    Route("/", home, methods=["GET"]),
    Mount("/static", app=StaticFiles(packages=[("ivr", "static")]), name="static"),
]
