"""POST /twilio/message-status: every status kept once, durably; forged or malformed posts keep nothing."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from ivr.businesses import add_business
from ivr.twilio.emulator import new_sid
from ivr.twilio.status_emulator import ConnectionOverrides, MessageStatusEmulator, statuses_for
from tests.conftest import ACME, ACME_NUMBER, CALLER, Service

PATH = "/twilio/message-status"


def stored(service: Service) -> list[tuple[object, ...]]:
    with sqlite3.connect(service.db_url.removeprefix("sqlite:///")) as db:
        return list(
            db.execute(
                "SELECT message_sid, status, error_code, to_number, from_number, channel, business"
                " FROM message_statuses ORDER BY received_at, status"
            )
        )


def first_reports(service: Service) -> list[tuple[object, ...]]:
    with sqlite3.connect(service.db_url.removeprefix("sqlite:///")) as db:
        return list(
            db.execute("SELECT message_sid, first_status, business, to_number, channel FROM messages")
        )


@pytest.fixture
def sender(service: Service) -> MessageStatusEmulator:
    return MessageStatusEmulator(service.twilio, messaging_service_sid=new_sid("MG"))


async def test_a_whatsapp_message_read_keeps_each_status_once_with_its_business(
    service: Service, sender: MessageStatusEmulator
) -> None:
    message = await sender.send(f"whatsapp:{CALLER}", f"whatsapp:{ACME_NUMBER}", "read")
    assert message.statuses == ["queued", "sent", "delivered", "read"]
    assert message.answers == [204, 204, 204, 204]
    rows = stored(service)
    assert [r[1] for r in rows] == ["queued", "sent", "delivered", "read"]
    assert {(r[0], r[3], r[4], r[5], r[6]) for r in rows} == {
        (message.sid, CALLER, ACME_NUMBER, "whatsapp", ACME)
    }
    assert first_reports(service) == [(message.sid, "queued", ACME, CALLER, "whatsapp")]


async def test_replayed_and_duplicate_callbacks_store_nothing_new(
    service: Service, sender: MessageStatusEmulator
) -> None:
    message = await sender.send(f"whatsapp:{CALLER}", f"whatsapp:{ACME_NUMBER}", "delivered")
    before = stored(service)
    for status in message.statuses:  # Twilio's duplicate posts, or someone replaying them
        params = sender.params(message.sid, status, message.to, message.from_)
        assert (await sender.twilio.post(PATH, params)).status_code == 204
    assert stored(service) == before
    assert len(first_reports(service)) == 1


async def test_a_failure_keeps_its_error_code_and_sms_numbers(service: Service) -> None:
    sender = MessageStatusEmulator(service.twilio)  # no Messaging Service: no callback for queued
    message = await sender.send(CALLER, ACME_NUMBER, "undelivered", error_code="30006")
    assert message.statuses == ["sent", "undelivered"]
    assert [(r[1], r[2], r[5]) for r in stored(service)] == [
        ("sent", None, "sms"),
        ("undelivered", 30006, "sms"),
    ]


async def test_a_sender_that_is_not_a_business_number_is_kept_without_a_business(
    service: Service, sender: MessageStatusEmulator
) -> None:
    await sender.send(f"whatsapp:{CALLER}", "whatsapp:+15559990000", "sent")
    assert {r[6] for r in stored(service)} == {None}


@pytest.mark.parametrize("signature", [None, "forged"])
async def test_unsigned_or_forged_posts_get_403_and_keep_nothing(
    service: Service, sender: MessageStatusEmulator, signature: str | None
) -> None:
    params = sender.params(new_sid("SM"), "delivered", f"whatsapp:{CALLER}", f"whatsapp:{ACME_NUMBER}")
    if signature is None:
        response = await service.twilio.post(PATH, params, signed=False)
    else:
        response = await service.twilio.post(PATH, params, signature="bm90IGEgc2lnbmF0dXJl")
    assert response.status_code == 403
    assert stored(service) == [] and first_reports(service) == []


async def test_a_signed_post_for_another_message_cannot_be_replayed_with_changed_parameters(
    service: Service, sender: MessageStatusEmulator
) -> None:
    params = sender.params(new_sid("SM"), "sent", f"whatsapp:{CALLER}", f"whatsapp:{ACME_NUMBER}")
    signature = service.twilio.sign(service.twilio.url(PATH), params)
    changed = params | {"MessageStatus": "read"}
    assert (await service.twilio.post(PATH, changed, signature=signature)).status_code == 403
    assert stored(service) == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MessageSid", "SM123"),
        ("MessageSid", "CA" + "0" * 32),
        ("MessageSid", "SM" + "A" * 32),
        ("MessageStatus", "delivered-ish"),
        ("MessageStatus", "DELIVERED"),
        ("MessageStatus", ""),
        ("To", "whatsapp:+1 415 555"),
        ("To", "+14155550123"),  # SMS To, WhatsApp From
        ("From", "whatsapp:not-a-number"),
        ("ErrorCode", "63016; DROP TABLE"),
        ("AccountSid", "ACnot-a-sid"),
        ("To", ""),
    ],
)
async def test_malformed_posts_get_400_and_keep_nothing(
    service: Service, sender: MessageStatusEmulator, name: str, value: str
) -> None:
    params = sender.params(new_sid("SM"), "failed", f"whatsapp:{CALLER}", f"whatsapp:{ACME_NUMBER}", "63016")
    params[name] = value
    response = await service.twilio.post(PATH, params)
    assert response.status_code == 400, response.text
    assert response.text.startswith("Bad request:")
    assert stored(service) == [] and first_reports(service) == []


async def test_oversized_body_is_refused_and_keeps_nothing(
    service: Service, sender: MessageStatusEmulator
) -> None:
    params = sender.params(new_sid("SM"), "sent", f"whatsapp:{CALLER}", f"whatsapp:{ACME_NUMBER}")
    params["Body"] = "x" * 2_000_000
    response = await service.twilio.post(PATH, params)
    assert response.status_code in (400, 413)
    assert stored(service) == []


async def test_a_get_is_not_a_status_callback(service: Service) -> None:
    assert (await service.client.get(PATH)).status_code == 405


async def test_when_the_store_refuses_the_answer_is_503_and_retried_only_when_overrides_ask(
    service: Service,
) -> None:
    with sqlite3.connect(service.db_url.removeprefix("sqlite:///")) as db:
        db.execute(
            "CREATE TRIGGER full BEFORE INSERT ON message_statuses "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
    plain = MessageStatusEmulator(service.twilio)
    message = await plain.send(CALLER, ACME_NUMBER, "sent")
    assert message.answers == [503]  # Twilio's default policy retries only failed connections
    retrying = MessageStatusEmulator(service.twilio, PATH + "#rc=2&rp=5xx")
    message = await retrying.send(CALLER, ACME_NUMBER, "sent")
    assert message.answers == [503, 503, 503]
    assert stored(service) == [] and first_reports(service) == []
    with sqlite3.connect(service.db_url.removeprefix("sqlite:///")) as db:
        db.execute("DROP TRIGGER full")
    assert (await retrying.send(CALLER, ACME_NUMBER, "sent")).answers == [204]
    assert len(stored(service)) == 1


def test_connection_overrides_are_read_from_the_fragment() -> None:
    bare, overrides = ConnectionOverrides.from_url("https://x.example/cb?a=1#rc=3&rp=4xx,5xx&ct=1000")
    assert bare == "https://x.example/cb?a=1"
    assert overrides.retries == 3 and overrides.retry_after(503) and overrides.retry_after(404)
    assert not overrides.retry_after(204)
    _, default = ConnectionOverrides.from_url("https://x.example/cb")
    assert default.retries == 1 and default.retry_after(None) and not default.retry_after(503)


def test_status_sequences_follow_twilio() -> None:
    assert statuses_for("read", messaging_service=True) == ["queued", "sent", "delivered", "read"]
    assert statuses_for("read", messaging_service=False) == ["sent", "delivered", "read"]
    assert statuses_for("failed", messaging_service=False) == ["failed"]
    assert statuses_for("undelivered", messaging_service=True) == ["queued", "sent", "undelivered"]


async def test_a_business_whatsapp_sender_number_finds_its_business(
    service: Service, sender: MessageStatusEmulator
) -> None:
    await add_business(
        service.store, "Sender Co", ["+15550004444"], ["offers"], whatsapp_numbers=["+15550009999"]
    )
    await service.client._transport.app.state.runtime.catalog.refresh()  # type: ignore[attr-defined]
    await sender.send(f"whatsapp:{CALLER}", "whatsapp:+15550009999", "sent")
    await sender.send(CALLER, "+15550009999", "sent")  # the same number by SMS is not a business number
    assert {(r[5], r[6]) for r in stored(service)} == {("whatsapp", "Sender Co"), ("sms", None)}


async def test_forgetting_a_phone_erases_its_message_statuses_too(
    service: Service, sender: MessageStatusEmulator
) -> None:
    await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
    await sender.send(f"whatsapp:{CALLER}", f"whatsapp:{ACME_NUMBER}", "read")
    other = await sender.send("whatsapp:+14155550166", f"whatsapp:{ACME_NUMBER}", "sent")
    assert await service.store.forget_phone(CALLER, "test", "asked to be forgotten") is not None
    assert {r[0] for r in stored(service)} == {other.sid}
    assert [r[0] for r in first_reports(service)] == [other.sid]
    path = service.db_url.removeprefix("sqlite:///")
    raw = b"".join(Path(p).read_bytes() for p in (path, path + "-wal") if os.path.exists(p))
    assert CALLER.encode() not in raw


async def test_forget_finds_a_number_that_only_received_messages(
    service: Service, sender: MessageStatusEmulator
) -> None:
    """Never called, never decided: `ivr forget` still erases its status callbacks, chained."""
    import asyncio
    import json

    from tests.test_forget import ivr

    stranger = "+14155550177"
    sent = await sender.send(f"whatsapp:{stranger}", f"whatsapp:{ACME_NUMBER}", "read")
    other = await sender.send("whatsapp:+14155550166", f"whatsapp:{ACME_NUMBER}", "sent")
    result = await asyncio.to_thread(ivr, service.db_url, "forget", "--phone", stranger)
    assert result.returncode == 0, result.stderr
    assert "message status(es)" in result.stdout and sent.sid not in result.stdout
    assert {r[0] for r in stored(service)} == {other.sid}
    assert [r[0] for r in first_reports(service)] == [other.sid]
    path = service.db_url.removeprefix("sqlite:///")
    raw = b"".join(Path(p).read_bytes() for p in (path, path + "-wal") if os.path.exists(p))
    assert stranger.encode() not in raw and stranger.removeprefix("+").encode() not in raw
    with sqlite3.connect(path) as db:
        [erasure] = [json.loads(b) for (b,) in db.execute("SELECT body FROM events WHERE kind = 'erasure'")]
    assert erasure["data"]["message_statuses"] >= 1 and erasure["data"]["subject_erased"] is None
    assert (await service.store.verify()).intact
    # Nothing left: a second request says so (exit 2), and writes no second erasure.
    again = await asyncio.to_thread(ivr, service.db_url, "forget", "--phone", stranger)
    assert again.returncode == 2 and "holds nothing" in again.stderr
