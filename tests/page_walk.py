"""Every page the app serves, found from its route table, on a real server with real data.

Shared by the accessibility, phone-width and keyboard tests. The list of pages is not kept by
hand: every GET route of `create_app()` is visited, with the query a real page needs taken from
QUERIES (a real business, a real call's receipt, a version that has a predecessor). A GET route
that is not a machine endpoint and answers no role with a page fails `test_every_route_is_walked`
until its parameters are added here, so another engineer's new page is checked as it lands.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from starlette.routing import Route

from consent_store import open_store
from ivr.app import create_app
from ivr.settings import Settings
from tests.live_server import SITE_PASSWORD, ivr, server, wait_until_healthy

DEMO = "Demo Bakery"
DEMO_NUMBER = "+15550100100"
ROLES = ("signed-out", "admin", "manager", "auditor")
USERS = {"admin": "root", "manager": "alice", "auditor": "aldo"}
# Endpoints for machines, not people: Twilio's webhooks, the JSON API, the health probe.
MACHINE_PREFIXES = ("/twilio/", "/api/", "/healthz")
# Screenshots the docs show (docs/managers.md), taken by these tests.
DOC_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


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
        for role, name in USERS.items():
            added = ivr(env, "user", "add", name, "--role", role, stdin=SITE_PASSWORD + "\n")
            assert added.returncode == 0, added.stderr
        call = ivr(env, "call", "--to", DEMO_NUMBER, "--from", "+15550100001", "--keys", "11")
        assert "Recorded opt_in" in call.stdout, call.stdout + call.stderr
        shown = ivr(env, "script", "show", "--business", DEMO, "--locale", "en-US").stdout
        # Version 2 straight into the store: `ivr script publish` lints in a fresh worker, whose
        # 2 s deadline a loaded machine can miss; the text is the default's with other words.
        text = shown.replace("would like to", "would love to")
        with ThreadPoolExecutor(1) as thread:  # the browser's event loop may run in this one
            thread.submit(asyncio.run, _publish(env["IVR_DATABASE_URL"], text)).result()
        rows = ivr(env, "export", "--format", "jsonl", "--include-demo").stdout.splitlines()
        yield World(base, env, json.loads(rows[0])["call_sid"])


async def _publish(url: str, text: str) -> None:
    store = open_store(url)
    await store.open()
    try:
        await store.publish_script(DEMO, "en-US", text, "page walk")
    finally:
        await store.close()


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

    Returns which roles saw a page per route, and every problem visit reported."""
    seen: dict[str, set[str]] = {}
    problems: list[str] = []
    urls = page_urls(world)
    for role in roles:
        context = browser.new_context(bypass_csp=True, viewport=viewport or {"width": 1200, "height": 900})
        try:
            sign_in(context, world.base, role)
            page = context.new_page()
            for path, url in urls:
                answer = context.request.get(world.base + url)
                seen.setdefault(path, set())
                if answer.status != 200:
                    continue
                if "text/html" not in answer.headers.get("content-type", ""):
                    seen[path].add(f"{role} (a download, not a page)")
                    continue
                page.goto(world.base + url)
                page.wait_for_load_state("load")
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
