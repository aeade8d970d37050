"""Every opt-out reaches the business's webhook at once, signed, in order, retried until it answers."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from consent_store import ExportFilter
from ivr.app import create_app
from ivr.businesses import add_business
from ivr.settings import Settings
from ivr.twilio.emulator import TwilioEmulator
from tests.cli_runner import run_ivr
from tests.conftest import ACME, ACME_NUMBER, AUTH_TOKEN, CALLER

SECRET = "webhook-secret-for-tests"
KEY = "an-ivr-secret-key-for-these-tests-0123456789"


class Receiver:
    """A real local HTTP endpoint that fails the first `failures` posts."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[tuple[int, dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = 500 if len(receiver.received) < receiver.failures else 200
                receiver.received.append((status, dict(self.headers), body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/opt-outs"

    def delivered(self) -> list[dict[str, object]]:
        return [json.loads(body) for status, _, body in self.received if status == 200]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver(failures=2)
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


async def wait_for(condition, seconds: float = 15) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_opt_outs_are_posted_signed_retried_and_sent_once_in_order(
    db_url: str, receiver: Receiver
) -> None:
    settings = Settings(database_url=db_url, twilio_auth_token=AUTH_TOKEN, webhook_retry_seconds=0.05)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        store = app.state.runtime.store
        await add_business(store, ACME, [ACME_NUMBER], ["delivery updates"])
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            twilio = TwilioEmulator(client, "http://testserver", AUTH_TOKEN)
            await twilio.call(ACME_NUMBER, CALLER, ["1"])
            await twilio.call(ACME_NUMBER, CALLER, ["9"])  # before the webhook existed: not sent
            await store.set_opt_out_webhook(ACME, receiver.url, SECRET, author="test")
            for phone in ("+14155550001", "+14155550002"):
                await twilio.call(ACME_NUMBER, phone, ["1"])
                await twilio.call(ACME_NUMBER, phone, ["9"])
            await wait_for(lambda: len(receiver.delivered()) == 2)
            await asyncio.sleep(1.5)  # more passes must not send anything twice
        rows = [r async for r in store.export_decisions(ExportFilter(action="opt_out"))]
    delivered = receiver.delivered()
    assert [d["phone"] for d in delivered] == ["+14155550001", "+14155550002"]
    assert [d["record_hash"] for d in delivered] == [r.record_hash for r in rows[1:]]
    assert [d["channel"] for d in delivered] == ["voice", "voice"]  # opt-outs by phone (key 9)
    assert [status for status, _, _ in receiver.received] == [500, 500, 200, 200]
    for _, headers, body in receiver.received:
        stamp, mac = dict(part.split("=", 1) for part in headers["X-IVR-Signature"].split(",")).values()
        expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(mac, expected)


async def test_the_cli_webhook_secret_is_not_kept_in_the_database_and_signs_deliveries(
    tmp_path: Path, receiver: Receiver
) -> None:
    db = tmp_path / "ivr.db"
    env = {"IVR_DATABASE_URL": f"sqlite:///{db}", "IVR_SECRET_KEY": KEY}
    drop = ("IVR_", "TWILIO_")  # in-process (tests/cli_runner.py), run beside this test's loop
    added = run_ivr(
        "business", "add", "--name", ACME, "--number", ACME_NUMBER, "--message-type", "updates",
        env=env, drop=drop,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    made = run_ivr("business", "webhook", "--name", ACME, "--url", receiver.url, env=env, drop=drop)
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert len(secret) >= 32 and secret.encode() not in b"".join(
        p.read_bytes() for p in tmp_path.iterdir() if p.is_file()
    )  # neither the database nor its WAL holds it
    settings = Settings(
        database_url=f"sqlite:///{db}",
        twilio_auth_token=AUTH_TOKEN,
        secret_key=KEY,
        webhook_retry_seconds=0.05,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            twilio = TwilioEmulator(client, "http://testserver", AUTH_TOKEN)
            await twilio.call(ACME_NUMBER, CALLER, ["1"])
            await twilio.call(ACME_NUMBER, CALLER, ["9"])
            await wait_for(lambda: len(receiver.delivered()) == 1)
    _, headers, body = receiver.received[-1]
    stamp, mac = dict(part.split("=", 1) for part in headers["X-IVR-Signature"].split(",")).values()
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(mac, expected)
