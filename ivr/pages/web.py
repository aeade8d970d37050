"""Server-rendered pages: templates, static files and the home page.

Templates embed JSON only through `html_safe_json` (the `json_for_html` filters) and link
only to https: URLs (`is https_url`): text from callers, Twilio or managers must never end
an element, open a comment or become a script.
"""

from __future__ import annotations

import json
from typing import Any

import jinja2
from markupsafe import Markup
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

# "<!--", "<script" and "</" inside a <script> element change where the browser ends it; as
# \u003c escapes they are the same JSON and mean nothing to HTML.
_HTML_UNSAFE_IN_JSON = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "'": "\\u0027"})


def html_safe_json(json_text: str) -> Markup:
    """JSON text made safe inside <script> or an element: `<`, `>`, `&`, `'` as \\u003c and so on.

    Valid JSON stays valid and means the same: those characters only occur inside its strings."""
    return Markup(json_text.translate(_HTML_UNSAFE_IN_JSON))


def json_for_html(value: Any) -> Markup:
    """A value as JSON safe inside <script> or an element."""
    return html_safe_json(json.dumps(value))


def is_https_url(url: object) -> bool:
    """Whether a URL may become a link: https only (never javascript:, data: or plain http)."""
    return isinstance(url, str) and url.startswith("https://")


templates.env.filters["json_for_html"] = json_for_html
templates.env.filters["json_text_for_html"] = html_safe_json  # JSON already serialised
templates.env.tests["https_url"] = is_https_url


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
            "try_phone": runtime.settings.try_phone,
        },
    )


routes = [
    Route("/", home, methods=["GET"]),
    Mount("/static", app=StaticFiles(packages=[("ivr", "static")]), name="static"),
]
