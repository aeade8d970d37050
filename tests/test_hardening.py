"""The security review's low findings, each tried from outside: hostile JSON in pages, script
links, file modes, raw values in the log, /try abuse, slow clients and forwarded addresses."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import html
import json
import logging
import os
import re
import socket
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from consent_store import ConsentStore, open_store
from ivr.app import create_app
from ivr.businesses import DEMO_MESSAGE_TYPES, DEMO_NAME, DEMO_NUMBER, add_business
from ivr.pages import web
from ivr.pages.try_phone import CALLS_PER_MINUTE, MAX_ANONYMOUS_CALLS, MAX_REHEARSALS, CallRate
from ivr.safe_logging import MAX_LOGGED_CHARS, SafeLogValues
from ivr.settings import Settings
from ivr.twilio.emulator import TwilioEmulator, new_sid
from tests.conftest import ACME, ACME_NUMBER, AUTH_TOKEN, CALLER, Service, make_settings
from tests.live_server import free_port, ivr, wait_until_healthy
from tests.test_manage_http import PASSWORD, csrf_of, sign_in
from tests.user_hashes import quick_hash

TEMPLATES = Path(web.__file__).parent.parent / "templates"  # ivr/templates, beside ivr/pages
HOSTILE = "<!--<script>alert(1)</script>-->&"


def embedded_json(page: str, element_id: str) -> str:
    """The text of a <script type="application/json"> element, as an HTML parser ends it."""
    start = re.search(rf'<script type="application/json" id="{element_id}">', page)
    assert start is not None, f"no #{element_id} in the page"
    return page[start.end() : page.index("</script", start.end())]


async def test_script_editor_json_survives_script_and_comment_markup_in_a_draft(service: Service) -> None:
    await service.store.add_user("mia", "manager", quick_hash(PASSWORD), author="test")
    await sign_in(service.client, "mia")
    script = {"business": ACME, "locale": "en-US"}
    page = await service.client.get("/manage/script", params=script)
    text = re.sub(
        r'^consent = """',
        f'consent = """{HOSTILE} ',
        (await service.store.script_version(ACME, "en-US")).text,
        count=1,
        flags=re.M,
    )
    saved = await service.client.post(
        "/manage/script", data={**script, "text": text, "action": "save", "csrf_token": csrf_of(page)}
    )
    assert saved.status_code == 200
    for response in (saved, await service.client.get("/manage/script", params=script)):
        raw = embedded_json(response.text, "script-context")
        # Nothing in it may end the element or open a comment that swallows the real </script>.
        assert not re.search(r"<!--|<script|</", raw, re.I)
        assert HOSTILE in json.loads(raw)["consent"]
        assert 'static/manage.js" defer></script>' in response.text[response.text.index(raw) :]


@pytest.mark.parametrize("template", sorted(TEMPLATES.glob("*.html")), ids=lambda p: p.name)
def test_templates_embed_json_only_through_the_html_safe_helper(template: Path) -> None:
    text = template.read_text()
    assert "tojson" not in text, "use json_for_html"
    for inside in re.findall(r"<script[^>]*>(.*?)</script>", text, re.S):
        for value in re.findall(r"{{(.*?)}}", inside):
            assert re.search(r"\|\s*json_(text_)?for_html\s*$", value), f"{{{{{value}}}}} in a <script>"


async def test_recording_link_is_only_for_https_urls(service: Service) -> None:
    await service.store.add_user("aldo", "auditor", quick_hash(PASSWORD), author="test")
    await sign_in(service.client, "aldo")
    shown = {}
    urls = ["javascript:alert(document.cookie)", "https://api.twilio.com/Recordings/RE1"]
    for url, caller in zip(urls, [CALLER, "+14155550124"], strict=True):
        call = await service.twilio.call(ACME_NUMBER, caller, ["1"], recording="none")
        assert call.recording_callback is not None
        params = {
            "AccountSid": service.twilio.account_sid,
            "CallSid": call.call_sid,
            "RecordingSid": "RE" + call.call_sid[2:],
            "RecordingStatus": "completed",
            "RecordingUrl": url,
            "RecordingDuration": "31",
        }
        assert (await service.twilio.post(call.recording_callback, params)).status_code == 204
        shown[url] = (await service.client.get("/audit/receipt", params={"call_sid": call.call_sid})).text
    hostile = shown["javascript:alert(document.cookie)"]
    assert "javascript:" not in " ".join(re.findall(r'href="([^"]*)"', hostile))
    assert "not an https link" in html.unescape(hostile)
    assert '<a href="https://api.twilio.com/Recordings/RE1"' in shown["https://api.twilio.com/Recordings/RE1"]


@pytest.mark.parametrize("url", ["http://api.twilio.com/x", " javascript:alert(1)", "data:text/html,x"])
def test_only_https_urls_count_as_links(url: str) -> None:
    from ivr.pages.web import is_https_url

    assert not is_https_url(url)
    assert is_https_url("https://api.twilio.com/x")


def private_modes(folder: Path) -> dict[str, str]:
    return {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, whatever the test runner's: files would be created 0644."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


async def test_database_wal_shm_and_head_file_are_created_private(tmp_path: Path, umask_022: None) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    async with open_store(f"sqlite:///{folder / 'ivr.db'}") as store:
        await add_business(store, ACME, [ACME_NUMBER], ["delivery updates"])
        assert {"ivr.db", "ivr.db-wal", "ivr.db-shm"} <= set(private_modes(folder))
        assert set(private_modes(folder).values()) == {"0o600"}
    assert "ivr.db.chainhead" in private_modes(folder)
    assert set(private_modes(folder).values()) == {"0o600"}, private_modes(folder)


def test_serve_and_export_create_private_files(
    umask_022: None, site: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    base, env = site
    files = private_modes(tmp_path)
    assert {"ivr.db", "ivr.db-wal", "ivr.db-shm"} <= set(files)
    assert all(mode == "0o600" for name, mode in files.items() if name.startswith("ivr.db")), files
    out = tmp_path / "export"
    out.mkdir()
    exported = ivr(env, "export", "--include-demo", "-o", str(out / "consent.csv"))
    assert exported.returncode == 0, exported.stderr
    assert private_modes(out) == {"consent.csv": "0o600", "consent.csv.manifest.json": "0o600"}


@contextlib.contextmanager
def signed_server(tmp_path: Path, *args: str, **extra_env: str) -> Iterator[tuple[str, Path]]:
    """A real `ivr serve` with a Twilio auth token (so tests can sign like Twilio) and its log."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "TWILIO_"))}
    env |= {
        "IVR_DATABASE_URL": f"sqlite:///{tmp_path / 'ivr.db'}",
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        **extra_env,
    }
    log, port = tmp_path / "serve.log", free_port()
    with log.open("ab") as out:
        command = [sys.executable, "-m", "ivr", "serve", "--port", str(port), *args]
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", process, log)
        yield f"http://127.0.0.1:{port}", log
    finally:
        process.terminate()
        process.wait(timeout=30)


async def test_request_values_reach_the_log_escaped_and_cut(tmp_path: Path) -> None:
    with signed_server(tmp_path) as (base, log):
        async with httpx.AsyncClient(timeout=30) as client:
            twilio = TwilioEmulator(client, base, AUTH_TOKEN)
            to = "+1555\x00\n2026-01-01 INFO forged line " + "9" * 100_000
            answer = await twilio.post("/twilio/voice", twilio.call_params(new_sid("CA"), to, CALLER))
            assert answer.status_code == 200
        deadline = time.monotonic() + 10
        while "to unknown number" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
    raw = log.read_bytes()
    [line] = [line for line in raw.decode().splitlines() if "to unknown number" in line]
    assert b"\x00" not in raw and "forged line" not in raw.decode().replace(line, "")
    assert "+1555\\x00\\n2026-01-01 INFO forged line 999" in line
    assert len(line) < 600, len(line)


@pytest.mark.parametrize(
    ("value", "logged"),
    [
        ("plain +14155550123", "plain +14155550123"),
        (
            "nul\x00 cr\r lf\n tab\t del\x7f c1\x85 ls\u2028",
            "nul\\x00 cr\\r lf\\n tab\\t del\\x7f c1\\x85 ls\\u2028",
        ),
        ("é 東京", "é 東京"),
        (b"bytes\x00", "bytes\\x00"),
        (42, "42"),
    ],
)
def test_log_values_are_escaped_repr_style(value: object, logged: str) -> None:
    record = logging.LogRecord("ivr", logging.INFO, __file__, 1, "value %s", (value,), None)
    assert SafeLogValues().filter(record)
    assert record.getMessage() == f"value {logged}"


def test_long_log_values_are_cut_and_say_by_how_much() -> None:
    record = logging.LogRecord("ivr", logging.INFO, __file__, 1, "%s|%s", ("x" * 250_000, "short"), None)
    SafeLogValues().filter(record)
    SafeLogValues().filter(record)  # a second handler sees the same record: cut once
    assert record.getMessage() == "x" * MAX_LOGGED_CHARS + "... (249800 more characters)|short"


@dataclasses.dataclass
class TryApp:
    """The real app with a demo business and Acme, and clients from any address."""

    app: Starlette
    store: ConsentStore

    def client(self, address: str = "203.0.113.7") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@contextlib.asynccontextmanager
async def try_app(db_url: str, **settings: Any) -> AsyncIterator[TryApp]:
    app = create_app(dataclasses.replace(make_settings(db_url), **settings))
    async with app.router.lifespan_context(app):
        store = app.state.runtime.store
        await add_business(store, DEMO_NAME, [DEMO_NUMBER], DEMO_MESSAGE_TYPES, demo=True)
        await add_business(store, ACME, [ACME_NUMBER], ["delivery updates"])
        await app.state.runtime.catalog.refresh()  # beside the running app: the catalog race
        try:
            yield TryApp(app, store)
        finally:  # calls left waiting for a key
            tasks = [c.task for c in getattr(app.state, "try_calls", {}).values() if c.task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def start_demo_call(client: httpx.AsyncClient, caller: str = CALLER) -> httpx.Response:
    return await client.post("/try/api/calls", json={"to": DEMO_NUMBER, "from": caller})


async def test_anonymous_try_calls_are_limited_per_client_address(db_url: str) -> None:
    async with try_app(db_url) as site, site.client("203.0.113.7") as client:
        started = [await start_demo_call(client) for _ in range(CALLS_PER_MINUTE)]
        assert [r.status_code for r in started] == [200] * CALLS_PER_MINUTE
        events = (await site.store.verify()).count
        refused = await start_demo_call(client)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
        assert f"at most {CALLS_PER_MINUTE} calls a minute" in refused.json()["error"]
        assert (await site.store.verify()).count == events  # the refused call wrote nothing
        async with site.client("198.51.100.9") as elsewhere:
            assert (await start_demo_call(elsewhere)).status_code == 200


def test_the_call_rate_remembers_a_bounded_number_of_addresses() -> None:
    rate = CallRate(per_minute=2, max_addresses=3)
    assert all(rate.allow(f"10.0.0.{i}", now=0.0) for i in range(1000))
    assert len(rate) == 3
    assert rate.allow("10.0.0.999", now=1.0) and not rate.allow("10.0.0.999", now=2.0)
    assert rate.allow("10.0.0.999", now=62.0)


async def test_idle_anonymous_calls_cannot_lock_managers_out_of_rehearsals(db_url: str) -> None:
    async with try_app(db_url) as site:
        for i in range(MAX_ANONYMOUS_CALLS):
            async with site.client(f"10.1.{i // 250}.{i % 250}") as client:
                assert (await start_demo_call(client, f"+1415555{i:04d}")).status_code == 200
        async with site.client("10.2.0.1") as client:
            full = await start_demo_call(client)
            assert full.status_code == 429 and "too many browser calls" in full.json()["error"]
        await site.store.add_user("mia", "manager", quick_hash(PASSWORD), author="test")
        async with site.client("10.3.0.1") as manager:
            await sign_in(manager, "mia")
            token = re.search(r'data-csrf="([^"]+)"', (await manager.get("/try")).text)
            assert token is not None
            rehearsals = [
                await manager.post(
                    "/try/api/calls",
                    json={"to": ACME_NUMBER, "from": CALLER},
                    headers={"X-CSRF-Token": token[1]},
                )
                for _ in range(MAX_REHEARSALS + 1)
            ]
        assert [r.status_code for r in rehearsals] == [200] * MAX_REHEARSALS + [429]


async def test_ivr_try_off_turns_the_browser_phone_off(db_url: str) -> None:
    assert not Settings.from_env({"IVR_TRY": "off"}).try_phone
    assert Settings.from_env({}).try_phone and Settings.from_env({"IVR_TRY": "on"}).try_phone
    with pytest.raises(ValueError, match="IVR_TRY"):
        Settings.from_env({"IVR_TRY": "maybe"})
    async with try_app(db_url, try_phone=False) as site, site.client() as client:
        assert (await client.get("/try")).status_code == 404
        assert (await start_demo_call(client)).status_code == 404
        assert (await client.post("/try/api/calls/x/keys", json={"key": "1"})).status_code == 404
        assert 'href="/try"' not in (await client.get("/")).text


def read_until_closed(sock: socket.socket, seconds: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long that took."""
    began, received = time.monotonic(), b""
    sock.settimeout(seconds)
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            received += chunk
    return received, time.monotonic() - began


def trickle(sock: socket.socket, data: bytes, every: float, seconds: float) -> None:
    """Send `data` a byte at a time until it is sent, `seconds` have passed or the server hangs up."""
    stop = time.monotonic() + seconds
    for byte in data:
        if time.monotonic() > stop:
            return
        try:
            sock.sendall(bytes([byte]))
        except OSError:  # closed by the server
            return
        time.sleep(every)


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, Path]]:
    """A real `ivr serve --request-timeout 2 --access-log`: its host, port and log."""
    folder = tmp_path_factory.mktemp("strict")
    with signed_server(folder, "--request-timeout", "2", "--access-log") as (base, log):
        host, port = base.removeprefix("http://").split(":")
        yield host, int(port), log


def test_a_body_trickled_a_byte_at_a_time_gets_408(strict_server: tuple[str, int, Path]) -> None:
    host, port, _ = strict_server
    body = b"CallSid=CA" + b"0" * 200
    with socket.create_connection((host, port)) as sock:
        sock.sendall(
            b"POST /twilio/voice HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        trickle(sock, body, every=0.2, seconds=4)
        answer, took = read_until_closed(sock, 10)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert took < 6


@pytest.mark.parametrize(
    ("start", "dribble"),
    [
        (b"", b""),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"X-A: 1\r\n" * 20),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", b"a" * 100),
    ],
    ids=["silent", "a-header-at-a-time", "inside-a-header"],
)
def test_headers_that_never_finish_are_cut_off(
    strict_server: tuple[str, int, Path], start: bytes, dribble: bytes
) -> None:
    host, port, _ = strict_server
    began = time.monotonic()
    with socket.create_connection((host, port)) as sock:
        sock.sendall(start)
        trickle(sock, dribble, every=0.2, seconds=6)
        answer, _ = read_until_closed(sock, 10)
    assert answer == b"" and time.monotonic() - began < 6


def test_oversized_headers_are_refused(strict_server: tuple[str, int, Path]) -> None:
    host, port, _ = strict_server
    with socket.create_connection((host, port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 100_000 + b"\r\n\r\n")
        answer, _ = read_until_closed(sock, 10)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]


def test_requests_at_a_normal_pace_are_untouched(strict_server: tuple[str, int, Path]) -> None:
    host, port, _ = strict_server
    with httpx.Client(base_url=f"http://{host}:{port}") as client:
        assert client.get("/healthz").status_code == 200
        time.sleep(2.5)  # longer than the deadline, idle between requests on one connection
        assert client.get("/try").status_code == 200


def test_a_real_server_does_not_name_its_software(strict_server: tuple[str, int, Path]) -> None:
    """No `server: uvicorn` on a page, a webhook's refusal or a 404: it tells an attacker which
    software's flaws to try."""
    host, port, _ = strict_server
    with httpx.Client(base_url=f"http://{host}:{port}") as client:
        answers = [client.get("/healthz"), client.post("/twilio/voice"), client.get("/no-such-page")]
    assert [a.status_code for a in answers] == [200, 403, 404]
    for answer in answers:
        assert "server" not in answer.headers, answer.headers
        assert "date" in answer.headers  # uvicorn's other default header stays


def logged_client(base: str, log: Path, path: str) -> str:
    """The client address the access log gives for a request to `path` from 127.0.0.1 that
    claims, in X-Forwarded-For, to come from 198.51.100.23."""
    assert httpx.get(f"{base}{path}", headers={"X-Forwarded-For": "198.51.100.23"}).status_code == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = re.search(rf'INFO: +([0-9.]+):\d+ - "GET {re.escape(path)} ', log.read_text())
        if found:
            return found[1]
        time.sleep(0.05)
    raise AssertionError(f"no access log line for {path}:\n{log.read_text()[-2000:]}")


def test_x_forwarded_for_is_trusted_from_127_0_0_1_by_default(strict_server: tuple[str, int, Path]) -> None:
    host, port, log = strict_server
    assert logged_client(f"http://{host}:{port}", log, "/healthz?default") == "198.51.100.23"


@pytest.mark.parametrize("how", ["option", "environment"])
def test_x_forwarded_for_is_ignored_from_addresses_not_allowed(tmp_path: Path, how: str) -> None:
    args, env = (
        (["--forwarded-allow-ips", "10.9.9.9"], {})
        if how == "option"
        else ([], {"IVR_FORWARDED_ALLOW_IPS": "10.9.9.9"})
    )
    with signed_server(tmp_path, "--access-log", *args, **env) as (base, log):
        assert logged_client(base, log, "/healthz") == "127.0.0.1"
