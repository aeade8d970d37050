"""Messages sent without consent: exactly those first reported while the recipient had not opted in,
or had opted out (with how long after), on both backends; `ivr compliance` and /manage/compliance."""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from consent_store import Business, ConsentDecision, ConsentStore, open_store, text_sha256
from consent_store.message_statuses import (
    MessageStatusReport,
    count_messages,
    record_message_status,
    unconsented_messages,
)
from ivr.twilio.emulator import new_sid
from ivr.twilio.status_emulator import MessageStatusEmulator
from tests.conftest import ACME, ACME_NUMBER, BILINGUAL, CALLER, Service
from tests.test_cli import ivr_async, one_line_error
from tests.test_manage_http import PASSWORD, sign_in
from tests.user_hashes import quick_hash

pytest_plugins = ["tests.pg_server"]

SHOP, SHOP_NUMBER = "Corner Shop", "+15550002222"
DUO, DUO_NUMBER = "Duo Travel", "+15550003333"
SPOKEN = "Corner Shop would like to send you offers over WhatsApp. Press 1 to opt in."
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ISO = "%Y-%m-%dT%H:%M:%S.%fZ"
KEYS = {"opt_in": "1", "declined": "2", "opt_out": "9"}


def at(days: float) -> str:
    return (T0 + dt.timedelta(days=days)).strftime(ISO)


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> str:
        self.at += dt.timedelta(microseconds=1)
        return self.at.strftime(ISO)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    fake = Clock()
    for module in ("consent_store.sqlite.writer", "consent_store.registry"):
        monkeypatch.setattr(f"{module}.utc_now", fake)
    monkeypatch.setattr("consent_store.postgres.writer.record_clock", fake)
    yield fake


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> AsyncIterator[ConsentStore]:
    url = (
        f"sqlite:///{tmp_path / 'c.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_migrated_url")
    )
    async with open_store(url) as opened:
        for name, number in ((SHOP, SHOP_NUMBER), (DUO, DUO_NUMBER)):
            await opened.add_business(
                Business(name, (number,), ("offers",), ("en-US",)), {"en-US": SPOKEN}, "t"
            )
        yield opened


class History:
    def __init__(self, store: ConsentStore, clock: Clock) -> None:
        self.store, self.clock, self.calls = store, clock, 0

    async def decide(self, day: float, phone: str, action: str, business: str = SHOP) -> None:
        self.calls += 1
        self.clock.at = T0 + dt.timedelta(days=day)
        await self.store.record_decision(
            ConsentDecision(
                f"CA{self.calls:032d}",
                phone,
                business,
                action,  # type: ignore[arg-type]
                ("offers",),
                KEYS[action],
                "en-US",
                1,
                text_sha256(SPOKEN),
                SPOKEN,
            )
        )

    async def message(
        self, day: float, to: str, status: str = "sent", sid: str | None = None, business: str = SHOP
    ) -> str:
        sid = sid or new_sid("SM")
        number = SHOP_NUMBER if business == SHOP else DUO_NUMBER
        await record_message_status(
            self.store, MessageStatusReport(sid, status, to, number, "whatsapp", at(day), business=business)
        )
        return sid


A, B, C, D, E = (f"+120255500{n:02d}" for n in range(1, 6))


async def test_exactly_the_messages_without_consent_at_their_first_report_are_listed(
    store: ConsentStore, clock: Clock
) -> None:
    h = History(store, clock)
    await h.decide(1, A, "opt_in")
    await h.decide(1, C, "opt_in")
    await h.decide(1, D, "declined")
    await h.decide(1, E, "opt_out")
    await h.decide(2, E, "opt_in")  # opted back in
    fine_a = await h.message(2, A)
    never_b = await h.message(2, B)
    fine_c = await h.message(2, C, "queued")
    await h.decide(3, C, "opt_out")
    await h.message(4, C, "read", sid=fine_c)  # a later status after the opt-out: still the first report
    after_c = await h.message(5.5, C)
    declined_d = await h.message(2.1, D)
    fine_e = await h.message(3, E)
    duo_to_a = await h.message(2, A, business=DUO)  # A opted in to the shop, not to Duo

    found = await unconsented_messages(store, SHOP)
    assert [(m.message_sid, m.breach) for m in found] == [
        (never_b, "never_opted_in"),
        (declined_d, "never_opted_in"),
        (after_c, "after_opt_out"),
    ]
    late = found[2]
    assert late.to_number == C and late.first_status == "sent" and late.first_at == at(5.5)
    assert late.opt_out_at is not None and late.opt_out_at.startswith(at(3)[:19])
    assert late.opt_out_seq is not None
    assert late.seconds_after_opt_out() == pytest.approx(2.5 * 86400, abs=0.01)
    assert {fine_a, fine_c, fine_e}.isdisjoint(m.message_sid for m in found)
    assert [m.message_sid for m in await unconsented_messages(store, DUO)] == [duo_to_a]
    assert [m.message_sid for m in await unconsented_messages(store, SHOP, since=at(4))] == [after_c]
    assert [m.message_sid for m in await unconsented_messages(store, SHOP, until=at(2.5))] == [
        never_b,
        declined_d,
    ]
    assert await count_messages(store, SHOP, None, None) == 6
    assert await count_messages(store, SHOP, at(4), None) == 1
    assert (await store.verify()).intact  # the statuses are outside the chain


async def test_statuses_are_kept_once_on_both_backends(store: ConsentStore, clock: Clock) -> None:
    h = History(store, clock)
    sid = await h.message(1, A, "queued")
    for day, status in ((1.1, "queued"), (1.2, "sent"), (1.2, "sent"), (1.3, "delivered")):
        await h.message(day, A, status, sid=sid)
    rows = await store._fetchall("SELECT status, received_at FROM message_statuses ORDER BY received_at")
    assert [(r[0], r[1]) for r in rows] == [("queued", at(1)), ("sent", at(1.2)), ("delivered", at(1.3))]
    first = await store._fetchall("SELECT first_status, first_at FROM messages")
    assert [(r[0], r[1]) for r in first] == [("queued", at(1))]


# -- through the webhooks, the CLI and the page (SQLite, the running app) ---------------------


@pytest.fixture
async def sent(service: Service) -> dict[str, str]:
    """CALLER opts in to Acme by phone; messages to CALLER (fine), to a stranger, and after an opt-out."""
    await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
    leaver = "+14155550188"
    await service.twilio.call(ACME_NUMBER, leaver, ["1"])
    sender = MessageStatusEmulator(service.twilio, messaging_service_sid=new_sid("MG"))
    wa = f"whatsapp:{ACME_NUMBER}"
    sids = {
        "fine": (await sender.send(f"whatsapp:{CALLER}", wa, "read")).sid,
        "before": (await sender.send(f"whatsapp:{leaver}", wa, "delivered")).sid,
        "stranger": (await sender.send("whatsapp:+14155550177", wa, "failed", error_code="63016")).sid,
    }
    await service.twilio.call(ACME_NUMBER, leaver, ["9"])  # offered 9 as an opted-in caller
    sids["after"] = (await sender.send(f"whatsapp:{leaver}", wa, "delivered")).sid
    return sids


async def test_ivr_compliance_lists_them_and_exits_1(service: Service, sent: dict[str, str]) -> None:
    result = await ivr_async(service.db_url, "compliance", "--business", ACME)
    assert result.returncode == 1, result.stderr
    assert "2 of 4 messages" in result.stdout
    listed = [line for line in result.stdout.splitlines() if "SM" in line]
    assert [sid for sid in sent.values() if sid in result.stdout] == [sent["stranger"], sent["after"]]
    assert "never opted in" in listed[0] and "after an opt-out" in listed[1]
    as_json = await ivr_async(service.db_url, "compliance", "--business", ACME, "--format", "json")
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["messages_checked"] == 4 and report["sent_without_consent"] == 2
    stranger, after = report["messages"]
    assert (stranger["message_sid"], stranger["reason"], stranger["to"]) == (
        sent["stranger"],
        "never_opted_in",
        "+14155550177",
    )
    assert stranger["first_status"] == "queued" and stranger["seconds_after_opt_out"] is None
    assert (after["message_sid"], after["reason"], after["channel"]) == (
        sent["after"],
        "after_opt_out",
        "whatsapp",
    )
    assert 0 <= after["seconds_after_opt_out"] < 60 and after["opt_out_record"] > 0


async def test_ivr_compliance_exits_0_when_clean_and_2_on_bad_input(
    service: Service, sent: dict[str, str]
) -> None:
    clean = await ivr_async(service.db_url, "compliance", "--business", BILINGUAL)
    assert clean.returncode == 0 and "0 of 0 messages" in clean.stdout
    future = await ivr_async(service.db_url, "compliance", "--business", ACME, "--since", "2099-01-01")
    assert future.returncode == 0, future.stdout
    for args in (
        ("--business", ACME, "--since", "yesterday"),
        ("--business", ACME, "--since", "2026-02-01", "--until", "2026-01-01"),
        ("--business", "No Such Shop"),
        ("--business", ACME, "--format", "xml"),
        (),
    ):
        line = one_line_error(await ivr_async(service.db_url, "compliance", *args))
        assert "error" in line


async def test_ivr_compliance_never_creates_a_database(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    line = one_line_error(await ivr_async(f"sqlite:///{missing}", "compliance", "--business", ACME))
    assert str(missing) in line and not missing.exists()


async def test_the_page_shows_the_same_and_says_what_to_ask(service: Service, sent: dict[str, str]) -> None:
    await service.store.add_user("acme-aud", "auditor", quick_hash(PASSWORD), author="t", businesses=[ACME])
    assert (await sign_in(service.client, "acme-aud")).status_code == 303
    page = await service.client.get("/manage/compliance", params={"business": ACME})
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert [sid for sid in sent.values() if sid in text] == [sent["stranger"], sent["after"]]
    assert "2 of 4 messages were sent without consent" in text
    assert "/api/consent" in text
    assert (await service.client.get("/manage/compliance", params={"business": BILINGUAL})).status_code == 404
    bad = await service.client.get("/manage/compliance", params={"business": ACME, "since": "soon"})
    assert bad.status_code == 400


async def test_the_page_needs_a_signed_in_user(service: Service) -> None:
    response = await service.client.get(
        "/manage/compliance", params={"business": ACME}, follow_redirects=False
    )
    assert response.status_code in (302, 303, 401, 403)
