"""The browser phone's "Send a WhatsApp message" box: through the emulator to the real webhook."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ivr.businesses import DEMO_NUMBER, add_business
from tests.conftest import ACME_NUMBER, Service
from tests.live_server import server, wait_until_healthy

URL = "/try/api/messages"
SENDER = "+15550100777"


@pytest.fixture
async def demo(service: Service) -> Service:
    await add_business(
        service.store, "Demo Bakery", [DEMO_NUMBER], ["order updates"], ["en-US", "es-ES"], demo=True
    )
    await service.client.get("/healthz")
    # The app's catalog may have loaded before the business was added (its watcher checks the
    # store once a second; a busy machine takes longer than that to get here): check the store now.
    assert service.app is not None
    await service.app.state.runtime.catalog.refresh()
    return service


async def test_stop_to_a_demo_business_records_a_demo_opt_out_and_shows_the_reply(demo: Service) -> None:
    response = await demo.client.post(URL, json={"to": DEMO_NUMBER, "from": SENDER, "body": " stop! "})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["replies"] == [
        "You will no longer receive WhatsApp messages from Demo Bakery. We have recorded your choice."
    ]
    assert answer["receipt"]["action"] == "opt_out" and answer["receipt"]["channel"] == "whatsapp"
    assert answer["receipt"]["simulated"] == 1


async def test_other_text_gets_no_reply_and_no_receipt(demo: Service) -> None:
    response = await demo.client.post(URL, json={"to": DEMO_NUMBER, "from": SENDER, "body": "hello"})
    assert response.json() == {"message_sid": response.json()["message_sid"], "replies": [], "receipt": None}


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"to": ACME_NUMBER, "from": SENDER, "body": "STOP"}, 404),  # a real business: never from here
        ({"to": "+15559999999", "from": SENDER, "body": "STOP"}, 404),
        ({"to": DEMO_NUMBER, "from": "call me", "body": "STOP"}, 400),
        ({"to": DEMO_NUMBER, "from": SENDER}, 400),
        ({"to": DEMO_NUMBER, "from": SENDER, "body": "x" * 1601}, 400),
    ],
)
async def test_refused_messages_write_nothing(demo: Service, payload: dict[str, str], status: int) -> None:
    before = (await demo.store.verify()).count
    response = await demo.client.post(URL, json=payload)
    assert response.status_code == status, response.text
    assert (await demo.store.verify()).count == before


async def test_messages_are_rate_limited_per_address(demo: Service) -> None:
    for _ in range(10):
        assert (
            await demo.client.post(URL, json={"to": DEMO_NUMBER, "from": SENDER, "body": "hi"})
        ).status_code == 200
    refused = await demo.client.post(URL, json={"to": DEMO_NUMBER, "from": SENDER, "body": "hi"})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "TWILIO_"))}
    env["IVR_DATABASE_URL"] = f"sqlite:///{tmp_path / 'ivr.db'}"
    log = tmp_path / "serve.log"
    with server(env, log) as (process, base):
        wait_until_healthy(base, process, log)
        yield base


@pytest.mark.slow
def test_the_message_box_works_from_the_keyboard(browser: Any, fresh_server: str) -> None:
    page = browser.new_page(viewport={"width": 900, "height": 1400})
    page.goto(f"{fresh_server}/try")
    box = page.get_by_role("region", name="Send a WhatsApp message")
    box.get_by_label("Your WhatsApp number").fill(SENDER)
    message = box.get_by_label("Message")
    message.fill("Ayuda")
    message.press("Enter")  # the form submits from the keyboard
    replies = page.locator("#message-replies")
    replies.get_by_text("Demo Bakery: Demo Bakery le envía por WhatsApp").wait_for()
    assert page.locator("#message-status").inner_text() == "Nothing was recorded."
    assert page.evaluate("document.activeElement.id") == "message-body"
    message.fill("BAJA")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "message-send"
    page.keyboard.press("Enter")
    replies.get_by_text("Ya no recibirá mensajes de WhatsApp de Demo Bakery").wait_for()
    page.locator("#message-status").get_by_text("Recorded opt_out by whatsapp").wait_for()
    page.close()
