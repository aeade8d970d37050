"""Every page the app serves, found from its route table, on a real server with real data.

Shared by the accessibility, phone-width and keyboard tests. The list of pages is not kept by
hand: every GET route of `create_app()` is visited, with the query a real page needs taken from
QUERIES (a real business, a real call's receipt, a version that has a predecessor). A GET route
that is not a machine endpoint and answers no role with a page fails `test_every_route_is_walked`
until its parameters are added here, so another engineer's new page is checked as it lands.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from starlette.routing import Route

from consent_store import ExportFilter, open_store
from ivr.app import create_app
from ivr.settings import Settings
from tests.cli_runner import run_ivr
from tests.live_server import SITE_PASSWORD, add_users, server, wait_until_healthy

DEMO = "Demo Bakery"
DEMO_NUMBER = "+15550100100"
ROLES = ("signed-out", "admin", "manager", "auditor")
USERS = {"admin": "root", "manager": "alice", "auditor": "aldo"}
# Endpoints for machines, not people: Twilio's webhooks, the JSON API, the health probe.
MACHINE_PREFIXES = ("/twilio/", "/api/", "/healthz")
# Screenshots the docs show (docs/managers.md), taken by these tests.
DOC_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
# Playwright waits at most 30 s by default; a page behind a busy machine's lint worker can take
# longer, and nothing here is timed.
BUSY_MS = 90_000


@dataclass(frozen=True)
class World:
    """A running `ivr serve` with the demo business, a second published version and a recorded call."""

    base: str
    env: dict[str, str]
    call_sid: str


def get_routes() -> list[str]:
    """The path of every GET route of the app, in the order the app declares them."""
    # The store is only opened by the app's lifespan, which never runs here.
    app = create_app(Settings(database_url=f"sqlite:///{tempfile.gettempdir()}/never-opened.db"))
    paths: list[str] = []
    for route in app.routes:
        if isinstance(route, Route) and "GET" in (route.methods or set()) and route.path not in paths:
            paths.append(route.path)
    return paths


def queries(world: World) -> dict[str, list[dict[str, str]]]:
    """The queries that make each route a real page (several: each is walked)."""
    script = {"business": DEMO, "locale": "en-US"}
    return {
        "/manage/script": [script, {"business": DEMO, "locale": "es-ES"}],
        "/manage/script/diff": [{**script, "version": "2"}],
        "/manage/script/compare": [{**script, "a": "1", "b": "2"}],
        "/manage/business": [{"name": DEMO}],
        "/manage/quality": [{"business": DEMO}],
        "/manage/quality.csv": [{"business": DEMO}],
        "/audit": [{}, {"action": "opt_in", "include": "1"}],
        "/audit/receipt": [{"call_sid": world.call_sid}],
        "/audit/export": [{"format": "csv", "include": "1"}],
        "/audit/export.manifest": [{"format": "csv", "include": "1"}],
    }


def is_machine(path: str) -> bool:
    return path.startswith(MACHINE_PREFIXES)


def page_urls(world: World) -> list[tuple[str, str]]:
    """(route path, URL path with its query) for every GET route meant for people."""
    known = queries(world)
    found = []
    for path in get_routes():
        if is_machine(path):
            continue
        if "{" in path:
            raise AssertionError(
                f"route {path} has path parameters: give it a real URL in tests/page_walk.py"
            )
        for query in known.get(path, [{}]):
            found.append((path, path + (f"?{urlencode(query)}" if query else "")))
    return found


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("walk")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "TWILIO_"))}
    env["IVR_DATABASE_URL"] = f"sqlite:///{tmp / 'ivr.db'}"
    log = tmp / "serve.log"
    with server(env, log) as (process, base):
        wait_until_healthy(base, process, log)
        # Users, the call, version 2 and the call's SID in this process (each `ivr` process costs a
        # second or more on a loaded machine); `ivr serve` is the real process.
        add_users(env["IVR_DATABASE_URL"], {name: role for role, name in USERS.items()})
        call = run_ivr(
            "call",
            "--to",
            DEMO_NUMBER,
            "--from",
            "+15550100001",
            "--keys",
            "11",
            env=env,
            drop=("IVR_", "TWILIO_"),
        )
        assert "Recorded opt_in" in call.stdout, call.stdout + call.stderr
        with ThreadPoolExecutor(1) as thread:  # the browser's event loop may run in this one
            call_sid = thread.submit(asyncio.run, _prepare(env["IVR_DATABASE_URL"])).result()
        yield World(base, env, call_sid)


async def _prepare(url: str) -> str:
    """Publish version 2 of the demo's en-US script and return the recorded call's SID.

    Version 2 goes straight into the store: `ivr script publish` lints in a fresh worker, whose
    2 s deadline a loaded machine can miss; the text is the default's with other words."""
    async with open_store(url) as store:
        shown = (await store.script_version(DEMO, "en-US")).text
        text = shown.replace("would like to", "would love to")
        assert text != shown
        await store.publish_script(DEMO, "en-US", text, "page walk")
        rows = [row async for row in store.export_decisions(ExportFilter(include_demo=True))]
    assert len(rows) == 1, rows
    return rows[0].call_sid


def sign_in(context: Any, base: str, role: str) -> None:
    """Sign the browser context in as the role's user (signed-out: nothing)."""
    if role == "signed-out":
        return
    page = context.new_page()
    page.goto(f"{base}/login")
    page.fill("#name", USERS[role])
    page.fill("#password", SITE_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)
    page.close()


def walk(
    browser: Any,
    world: World,
    visit: Callable[[Any, str, str], list[str]],
    *,
    viewport: dict[str, int] | None = None,
    roles: tuple[str, ...] = ROLES,
) -> tuple[dict[str, set[str]], list[str]]:
    """Open every page as every role and call visit(page, role, url) on each HTML page.

    Returns which roles saw a page per route, and every problem visit reported.

    A route that redirects (signed out, most pages send you to /login?next=...) counts as seen,
    but the page it lands on is visited once per role: the first redirect there is checked, the
    repeats (the same page, another `next`) are not."""
    seen: dict[str, set[str]] = {}
    problems: list[str] = []
    urls = page_urls(world)
    for role in roles:
        context = browser.new_context(bypass_csp=True, viewport=viewport or {"width": 1200, "height": 900})
        context.set_default_timeout(BUSY_MS)
        landed_on: set[str] = set()  # the pages this role was redirected to and already visited
        try:
            sign_in(context, world.base, role)
            page = context.new_page()
            for path, url in urls:
                answer = context.request.get(world.base + url, timeout=BUSY_MS)
                seen.setdefault(path, set())
                if answer.status != 200:
                    continue
                if "text/html" not in answer.headers.get("content-type", ""):
                    seen[path].add(f"{role} (a download, not a page)")
                    continue
                landed = urlsplit(answer.url).path
                if landed != path:
                    seen[path].add(role)
                    if landed in landed_on:
                        continue
                    landed_on.add(landed)
                page.goto(world.base + url)
                seen[path].add(role)
                problems += [f"{role} {url}: {p}" for p in visit(page, role, url)]
        finally:
            context.close()
    return seen, problems


def axe_source() -> str:
    found = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
    if not found.exists():
        pytest.fail(f"axe-core is not installed: run 'npm ci --prefix tests/axe' (looked for {found})")
    return found.read_text("utf-8")


BLOCKING = ("serious", "critical")


def serious_violations(page: Any, source: str | None = None) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now, one line each."""
    source = source or axe_source()
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(source)
    results = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    found = []
    for violation in results["violations"]:
        if violation["impact"] not in BLOCKING:
            continue
        nodes = "; ".join(
            f"{', '.join(node['target'])}: {node['html'][:160]}" for node in violation["nodes"][:4]
        )
        found.append(f"{violation['impact']} {violation['id']} ({violation['help']}): {nodes}")
    return found
