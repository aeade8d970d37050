"""STOP by message: POST /twilio/messaging records one opt-out per MessageSid, in the sender's
language, and nothing else writes anything."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from consent_store import ExportFilter
from consent_store.events import OptOutWebhook
from ivr.api.consent import new_token, token_sha256
from ivr.optout_webhooks import payload
from ivr.twilio.emulator import TwilioEmulator, new_sid
from ivr.twilio.message_emulator import MessageEmulator, message_params, replies_of
from ivr.twilio.webhooks import REHEARSAL_PARAM, simulated_mark
from tests.conftest import ACME, ACME_NUMBER, AUTH_TOKEN, BILINGUAL, BILINGUAL_NUMBER, CALLER, Service

WHATSAPP_SENDER = "+15550002222"  # Acme's WhatsApp sender, not one of its voice numbers


pytest_plugins = ["tests.pg_server"]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every test here on both backends (the `service` fixture opens this URL)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ivr.db'}"
    return str(request.getfixturevalue("pg_migrated_url"))


@pytest.fixture
async def texting(service: Service) -> AsyncIterator[MessageEmulator]:
    await service.store.add_number(ACME, "whatsapp:" + WHATSAPP_SENDER, "test")
    await service.client.get("/healthz")
    # The app's catalog may have loaded before the number was added (its watcher checks the store
    # once a second; a busy machine takes longer than that to get here): check the store now.
    assert service.app is not None
    await service.app.state.runtime.catalog.refresh()
    yield MessageEmulator(service.twilio)


async def event_count(service: Service) -> int:
    return (await service.store.verify()).count


async def decisions(service: Service, phone: str = CALLER) -> list:
    return [r async for r in service.store.export_decisions(ExportFilter(phone=phone, include_demo=True))]


async def stored_data(service: Service, message_sid: str) -> dict[str, Any]:
    """The hashed data of the decision a message made, read back from the store."""
    (row,) = [r for r in await service.store.events_for_call(message_sid) if r.kind == "decision"]
    data: dict[str, Any] = json.loads(row.body)["data"]
    return data


@pytest.mark.parametrize(
    "body", ["STOP", "stop", " Stop. ", "STOP!", "s t o p", "Unsubscribe", "QUIT", "stopall"]
)
async def test_english_stop_words_record_one_opt_out_confirmed_in_english(
    service: Service, texting: MessageEmulator, body: str
) -> None:
    reply = await texting.send(WHATSAPP_SENDER, CALLER, body)
    assert reply.status_code == 200
    assert reply.replies == (
        f"You will no longer receive WhatsApp messages from {ACME}. We have recorded your choice.",
    )
    rows = await decisions(service)
    assert [(r.action, r.business, r.channel, r.call_sid) for r in rows] == [
        ("opt_out", ACME, "whatsapp", reply.message_sid)
    ]
    data = await stored_data(service, reply.message_sid)
    assert data["message_sid"] == reply.message_sid and data["message_text"] == body
    assert data["channel"] == "whatsapp" and data["locale"] == "en-US" and data["script_version"] == 0


@pytest.mark.parametrize("body", ["BAJA", "baja", "  Baja. ", "PARAR", "cancelar!", "Alto", "no más"])
async def test_spanish_stop_words_answer_in_spanish(
    service: Service, texting: MessageEmulator, body: str
) -> None:
    # An SMS to the bilingual business's number, from someone with no decision yet: the keyword's language.
    reply = await texting.send(BILINGUAL_NUMBER, CALLER, body, whatsapp=False)
    assert reply.replies == (
        f"Ya no recibirá mensajes de WhatsApp de {BILINGUAL}. Hemos registrado su elección.",
    )
    rows = await decisions(service)
    assert [(r.action, r.channel, r.locale) for r in rows] == [("opt_out", "sms", "es-ES")]


async def test_the_language_of_the_last_decision_wins_over_the_keywords(
    service: Service, texting: MessageEmulator
) -> None:
    # The caller opted in in Spanish (key 1 = es-ES at the language menu, then 1 = opt in)...
    await service.twilio.call(BILINGUAL_NUMBER, CALLER, ["1", "1"])
    assert [(r.action, r.locale) for r in await decisions(service)] == [("opt_in", "es-ES")]
    # ...then writes STOP in English: the confirmation is in Spanish, naming the business.
    reply = await texting.send(BILINGUAL_NUMBER, CALLER, "STOP", whatsapp=False)
    assert reply.text == f"Ya no recibirá mensajes de WhatsApp de {BILINGUAL}. Hemos registrado su elección."
    rows = await decisions(service)
    assert [(r.action, r.locale, r.channel) for r in rows] == [
        ("opt_in", "es-ES", "voice"),
        ("opt_out", "es-ES", "sms"),
    ]
    # The consent API says no at once.
    token = new_token()
    await service.store.add_api_token("crm", token_sha256(token), "test")
    answer = await service.client.get(
        "/api/consent",
        params={"phone": CALLER, "business": BILINGUAL},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.json()["opted_in"] is False and answer.json()["last_action"] == "opt_out"


async def test_a_retry_of_the_same_message_writes_nothing_and_gets_the_same_reply(
    service: Service, texting: MessageEmulator
) -> None:
    sid = new_sid("SM")
    first = await texting.send(WHATSAPP_SENDER, CALLER, "STOP", message_sid=sid)
    count = await event_count(service)
    again = await texting.send(WHATSAPP_SENDER, CALLER, "STOP", message_sid=sid)
    assert again.replies == first.replies and again.status_code == 200
    assert await event_count(service) == count
    assert len(await decisions(service)) == 1
    # A new message is a new opt-out (the person said it again).
    await texting.send(WHATSAPP_SENDER, CALLER, "stop")
    assert len(await decisions(service)) == 2


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "HELP",
            f"{ACME} sends you delivery updates and appointment reminders over WhatsApp."
            " To stop them, reply STOP.",
        ),
        (
            " help? ",
            f"{ACME} sends you delivery updates and appointment reminders over WhatsApp."
            " To stop them, reply STOP.",
        ),
        (
            "START",
            f"To receive WhatsApp messages from {ACME}, please call {ACME_NUMBER} and choose to opt in:"
            " a message alone does not record your consent.",
        ),
    ],
)
async def test_help_and_start_answer_and_write_nothing(
    service: Service, texting: MessageEmulator, body: str, expected: str
) -> None:
    before = await event_count(service)
    reply = await texting.send(WHATSAPP_SENDER, CALLER, body)
    assert reply.replies == (expected,)
    assert await event_count(service) == before


async def test_ayuda_answers_in_spanish_with_the_spoken_message_types(
    service: Service, texting: MessageEmulator
) -> None:
    reply = await texting.send(BILINGUAL_NUMBER, CALLER, "Ayuda", whatsapp=False)
    assert (
        reply.text
        == f"{BILINGUAL} le envía por WhatsApp avisos de entrega. Para dejar de recibirlos, responda BAJA."
    )


@pytest.mark.parametrize(
    "body", ["", "hello", "please stop", "STOP STOP", "stop it", "STOP" * 40, "🛑", "ST0P"]
)
async def test_other_text_gets_an_empty_response_and_writes_nothing(
    service: Service, texting: MessageEmulator, body: str
) -> None:
    before = await event_count(service)
    reply = await texting.send(WHATSAPP_SENDER, CALLER, body)
    assert reply.status_code == 200 and reply.replies == () and reply.problem is None
    assert await event_count(service) == before


async def test_unknown_to_and_withheld_senders_get_an_empty_response_and_nothing_is_written(
    service: Service, texting: MessageEmulator
) -> None:
    before = await event_count(service)
    for to, sender, whatsapp in [
        ("+15559999999", CALLER, True),  # nobody's number
        ("+15559999999", CALLER, False),
        (WHATSAPP_SENDER, CALLER, False),  # a WhatsApp sender is no SMS number
        (WHATSAPP_SENDER, "+266696687", True),  # ANONYMOUS spelled on a keypad
        (WHATSAPP_SENDER, "+7378742833", True),
    ]:
        reply = await texting.send(to, sender, "STOP", whatsapp=whatsapp)
        assert (reply.status_code, reply.replies) == (200, ()), (to, sender)
    assert await event_count(service) == before


@pytest.mark.parametrize("signature", [None, "bm90IGEgc2lnbmF0dXJl"])
async def test_unsigned_or_forged_posts_get_403_and_write_nothing(
    service: Service, texting: MessageEmulator, signature: str | None
) -> None:
    before = await event_count(service)
    params = texting.params(WHATSAPP_SENDER, CALLER, "STOP")
    headers = {} if signature is None else {"X-Twilio-Signature": signature}
    response = await service.client.post("/twilio/messaging", data=params, headers=headers)
    assert response.status_code == 403
    assert await event_count(service) == before


async def test_a_signed_message_re_cut_or_for_another_token_is_refused(
    service: Service, texting: MessageEmulator
) -> None:
    before = await event_count(service)
    params = texting.params(WHATSAPP_SENDER, CALLER, "HELLO")
    url = service.twilio.url("/twilio/messaging")
    signature = service.twilio.sign(url, params)
    forged = params | {"Body": "STOP"}  # signed for HELLO, sent as STOP
    assert (await service.twilio.post("/twilio/messaging", forged, signature=signature)).status_code == 403
    stranger = MessageEmulator(TwilioEmulator(service.client, "http://testserver", "another-accounts-token"))
    assert (await stranger.send(WHATSAPP_SENDER, CALLER, "STOP")).status_code == 403
    assert await event_count(service) == before


@pytest.mark.parametrize(
    "change",
    [
        {"MessageSid": "SM123"},
        {"MessageSid": "CA" + "a" * 32},
        {"MessageSid": "SM" + "A" * 32},
        {"MessageSid": ""},
        {"From": CALLER},  # To is whatsapp:, From is not
        {"To": ""},
    ],
)
async def test_malformed_signed_messages_get_400_and_write_nothing(
    service: Service, texting: MessageEmulator, change: dict[str, str]
) -> None:
    before = await event_count(service)
    params = texting.params(WHATSAPP_SENDER, CALLER, "STOP") | change
    response = await service.twilio.post("/twilio/messaging", params)
    assert response.status_code == 400, response.text
    assert await event_count(service) == before


async def test_a_long_message_is_no_keyword_and_the_text_kept_is_bounded(
    service: Service, texting: MessageEmulator
) -> None:
    before = await event_count(service)
    reply = await texting.send(WHATSAPP_SENDER, CALLER, "STOP" + " " * 5000)
    assert reply.replies == () and await event_count(service) == before


async def test_a_simulated_mark_must_hold_to_flag_the_opt_out(
    service: Service, texting: MessageEmulator
) -> None:
    sid = new_sid("SM")
    await texting.send(
        WHATSAPP_SENDER,
        CALLER,
        "STOP",
        message_sid=sid,
        extra_params={REHEARSAL_PARAM: simulated_mark(AUTH_TOKEN, sid)},
    )
    forged = new_sid("SM")
    await texting.send(
        WHATSAPP_SENDER,
        CALLER,
        "STOP",
        message_sid=forged,
        extra_params={REHEARSAL_PARAM: simulated_mark(AUTH_TOKEN, sid)},
    )
    assert [r.simulated for r in await decisions(service)] == [1, None]


async def test_export_rows_carry_the_channel(service: Service, texting: MessageEmulator) -> None:
    await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
    await texting.send(WHATSAPP_SENDER, CALLER, "STOP")
    await texting.send(ACME_NUMBER, "+14155550124", "STOP", whatsapp=False)
    rows = [r async for r in service.store.export_decisions(ExportFilter())]
    assert [(r.action, r.channel) for r in rows] == [
        ("opt_in", "voice"),
        ("opt_out", "whatsapp"),
        ("opt_out", "sms"),
    ]
    standing = await service.store.standing(CALLER, ACME)
    assert standing is not None and standing.action == "opt_out"


def test_the_emulator_sends_what_twilio_sends() -> None:
    whatsapp = message_params("AC" + "1" * 32, "SM" + "2" * 32, "+15550002222", CALLER, "STOP", whatsapp=True)
    assert whatsapp["From"] == "whatsapp:" + CALLER and whatsapp["To"] == "whatsapp:+15550002222"
    assert whatsapp["WaId"] == CALLER[1:] and whatsapp["SmsStatus"] == "received"
    assert whatsapp["SmsSid"] == whatsapp["SmsMessageSid"] == whatsapp["MessageSid"]
    assert "FromCountry" not in whatsapp and "MessagingServiceSid" not in whatsapp
    sms = message_params("AC" + "1" * 32, "SM" + "2" * 32, ACME_NUMBER, CALLER, "", whatsapp=False)
    assert sms["Body"] == "" and "ProfileName" not in sms and "WaId" not in sms and sms["From"] == CALLER
    assert all(value != "" for name, value in sms.items() if name != "Body")
    # How Twilio reads answers.
    assert replies_of(200, "application/xml", "<Response/>") == ((), None)
    assert replies_of(
        200, "text/xml", "<Response><Message><Body>a</Body></Message><Message>b</Message></Response>"
    )[0] == ("a", "b")
    assert replies_of(403, "text/plain", "Forbidden")[0] == ()
    assert replies_of(200, "application/json", "{}")[1] is not None
    assert replies_of(200, "text/xml", "<Response><Say>x</Say></Response>")[1] is not None


async def test_messages_do_not_touch_other_webhooks(service: Service, texting: MessageEmulator) -> None:
    """A message To a WhatsApp sender never selects a business for a call to that number."""
    params = service.twilio.call_params(new_sid("CA"), "whatsapp:" + WHATSAPP_SENDER, CALLER)
    response = await service.twilio.post("/twilio/voice", params)
    assert response.status_code == 200 and "<Hangup" in response.text


async def test_the_businesss_opt_out_webhook_is_told_of_a_stop(
    service: Service, texting: MessageEmulator
) -> None:
    """The opt-out webhook (ivr/optout_webhooks.py) derives its notices from the log: a STOP is one."""
    reply = await texting.send(WHATSAPP_SENDER, CALLER, "STOP")
    await texting.send(WHATSAPP_SENDER, CALLER, "STOP", message_sid=reply.message_sid)  # a retry: no second
    notices = await service.store.opt_outs_after(ACME, 0)
    assert [(n.call_sid, n.phone, n.channel) for n in notices] == [(reply.message_sid, CALLER, "whatsapp")]
    hook = OptOutWebhook(ACME, "https://crm.example.com/hook", "secret", 0, 0, None)
    assert json.loads(payload(hook, notices[0]))["channel"] == "whatsapp"  # what the business is told


async def test_help_names_the_message_types_as_the_locales_script_says_them(
    service: Service, texting: MessageEmulator
) -> None:
    """A Spanish script's [message_types] names (its spoken names) are used in AYUDA's answer."""
    from voice_scripts import default_script_text

    await service.store.add_number(BILINGUAL, "whatsapp:+15550004444", "test")
    named = await service.store.get_business(BILINGUAL)
    text = default_script_text("es-ES").replace(
        "[message_types]\n", f'[message_types]\n"{named.message_types[0]}" = "avisos de sus pedidos"\n', 1
    )
    await service.store.publish_script(BILINGUAL, "es-ES", text, "test")
    # Published straight into the store beside the running app: the catalog checks the store now
    # rather than at its watcher's next tick (test_catalog.py tests the watcher).
    assert service.app is not None
    await service.app.state.runtime.catalog.refresh()
    reply = await texting.send("+15550004444", CALLER, "AYUDA")
    assert reply.text == (
        f"{BILINGUAL} le envía por WhatsApp avisos de sus pedidos. Para dejar de recibirlos, responda BAJA."
    )


async def test_a_stop_that_cannot_be_written_is_never_confirmed(
    service: Service, texting: MessageEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from consent_store import StoreUnavailable

    async def refuse(decision: object) -> object:
        raise StoreUnavailable("disk full")

    monkeypatch.setattr(service.store, "record_decision", refuse)
    reply = await texting.send(BILINGUAL_NUMBER, CALLER, "BAJA", whatsapp=False)
    assert reply.text.startswith("Lo sentimos: por un problema técnico no hemos podido registrar su elección")
    assert "Ya no recibirá" not in reply.text
    monkeypatch.undo()
    assert await decisions(service) == []
