"""Quality per script version includes what happened to the messages: delivery, failures by
ErrorCode with their meaning, opt-outs by channel after the first message, and the flags;
on SQLite and PostgreSQL, through the store, the CSV, `ivr stats` and /manage/quality."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
from collections.abc import AsyncIterator, Iterator

import pytest

from consent_store import Business, ConsentDecision, ConsentStore, open_store, text_sha256
from consent_store.delivery_stats import DeliveryFigures
from consent_store.message_statuses import MessageStatusReport, record_message_status
from consent_store.stats import Period
from ivr.quality.delivery import DELIVERY_COLUMNS, error_meaning
from ivr.quality.report import COLUMNS, quality_csv, quality_flags, quality_json, quality_table
from ivr.twilio.emulator import new_sid
from ivr.twilio.status_emulator import MessageStatusEmulator
from tests.conftest import ACME, ACME_NUMBER, CALLER, Service
from tests.test_cli import ivr_async
from tests.test_manage_http import PASSWORD, sign_in
from tests.user_hashes import quick_hash

pytest_plugins = ["tests.pg_server"]

SHOP, SHOP_NUMBER = "Corner Shop", "+15550002222"
SPOKEN = "Corner Shop would like to send you offers over WhatsApp. Press 1 to opt in."
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NOW = T0 + dt.timedelta(days=100)
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


@pytest.fixture
async def store(store_url: str, clock: Clock) -> AsyncIterator[ConsentStore]:
    async with open_store(store_url) as opened:
        await opened.add_business(
            Business(SHOP, (SHOP_NUMBER,), ("offers",), ("en-US",)), {"en-US": SPOKEN}, "t"
        )
        clock.at = T0 + dt.timedelta(days=10)
        await opened.publish_script(SHOP, "en-US", SPOKEN + " ", "mia")
        yield opened


class History:
    def __init__(self, store: ConsentStore, clock: Clock) -> None:
        self.store, self.clock, self.n = store, clock, 0

    async def decide(
        self, day: float, phone: str, action: str, version: int = 1, channel: str | None = None
    ) -> None:
        self.n += 1
        self.clock.at = T0 + dt.timedelta(days=day)
        sid = new_sid("SM") if channel in ("whatsapp", "sms") else f"CA{self.n:032d}"
        await self.store.record_decision(
            ConsentDecision(
                sid,
                phone,
                SHOP,
                action,  # type: ignore[arg-type]
                ("offers",),
                KEYS[action] if channel is None else "",
                "en-US",
                version,
                text_sha256(SPOKEN),
                SPOKEN,
                channel=channel,  # type: ignore[arg-type]
                message_sid=sid if channel is not None else None,
            )
        )

    async def message(self, day: float, to: str, statuses: list[str], code: int | None = None) -> None:
        sid = new_sid("SM")
        for step, status in enumerate(statuses):
            failed = status in ("failed", "undelivered")
            report = MessageStatusReport(
                sid,
                status,
                to,
                SHOP_NUMBER,
                "whatsapp",
                at(day + step / 1000),
                error_code=code if failed else None,
                business=SHOP,
            )
            await record_message_status(self.store, report)


READ, DELIVERED = ["sent", "delivered", "read"], ["sent", "delivered"]
FAILED, UNDELIVERED = ["failed"], ["sent", "undelivered"]


async def history(store: ConsentStore, clock: Clock) -> None:
    """v1: 20 recipients, 2 failures; v2: 20 recipients, 12 failures; one message with no opt-in."""
    h = History(store, clock)
    v1 = [f"+1202555{n:04d}" for n in range(20)]
    v2 = [f"+1303555{n:04d}" for n in range(20)]
    for phone in v1:
        await h.decide(1, phone, "opt_in", 1)
    for phone in v2:
        await h.decide(11, phone, "opt_in", 2)
    for n, phone in enumerate(v1):
        outcome = READ if n < 10 else DELIVERED if n < 18 else FAILED if n == 18 else UNDELIVERED
        code = 63016 if n == 18 else 30003 if n == 19 else None
        await h.message(2, phone, outcome, code)
        await h.message(3, phone, READ)  # a second message: a recipient counts once for opt-outs
    for n, phone in enumerate(v2):
        outcome = READ if n < 8 else FAILED
        await h.message(12, phone, outcome, 63016 if 8 <= n < 18 else 63024 if n >= 18 else None)
    # Opt-outs after the first message: v1 one by WhatsApp in 3 days, one by phone in 20;
    # v2 four by WhatsApp and one by SMS within 7 days, and one by phone after 40 days.
    await h.decide(5, v1[0], "opt_out", 1, "whatsapp")
    await h.decide(22, v1[1], "opt_out", 1)
    for phone in v2[:4]:
        await h.decide(13, phone, "opt_out", 2, "whatsapp")
    await h.decide(14, v2[4], "opt_out", 2, "sms")
    await h.decide(52, v2[5], "opt_out", 2)
    await h.message(20, "+14155550000", READ)  # never opted in


async def test_delivery_figures_per_version_match_the_history(store: ConsentStore, clock: Clock) -> None:
    await history(store, clock)
    figures = await store.opt_in_quality(SHOP, ("en-US",), now=NOW)
    v1, v2, none = figures.delivery
    assert v1 == DeliveryFigures(
        "en-US", 1, 40, 38, 30, 2, ((30003, 1), (63016, 1)), 20, 20, (("whatsapp", 1),), 20,
        (("voice", 1), ("whatsapp", 1)),
    )  # fmt: skip
    assert v2 == DeliveryFigures(
        "en-US", 2, 20, 8, 8, 12, ((63016, 10), (63024, 2)), 20, 20, (("sms", 1), ("whatsapp", 4)), 20,
        (("sms", 1), ("whatsapp", 4)),
    )  # fmt: skip
    assert none == DeliveryFigures(None, None, 1, 1, 1, 0, (), 1, 1, (), 1, ())
    # the keyword opt-outs are not calls: the call figures count only the 40 opt-in calls and 2 by phone
    assert sum(s.calls for s in figures.scripts) == 42
    assert (await store.verify()).intact


async def test_a_range_counts_only_messages_first_reported_in_it(store: ConsentStore, clock: Clock) -> None:
    await history(store, clock)
    figures = await store.opt_in_quality(SHOP, ("en-US",), Period(at(11), at(19)), now=NOW)
    [v2] = figures.delivery
    assert (v2.script_version, v2.messages, v2.failed) == (2, 20, 12)


async def test_a_version_that_fails_more_is_flagged_with_the_same_test(
    store: ConsentStore, clock: Clock
) -> None:
    await history(store, clock)
    figures = await store.opt_in_quality(SHOP, ("en-US",), now=NOW)
    flags = {f.kind: f for f in quality_flags(figures)}
    failed = flags["failed_rate"]
    assert (failed.script_version, failed.previous_version) == (2, 1)
    assert (failed.count, failed.total, failed.previous_count, failed.previous_total) == (12, 20, 2, 40)
    assert failed.p_value is not None and failed.p_value < 0.05
    # 30-day opt-outs after the first message, 5/20 vs 2/20: 15 points worse, but p = 0.21
    assert "message_opted_out_30d_rate" not in flags


async def test_csv_json_and_table_carry_the_delivery_figures(store: ConsentStore, clock: Clock) -> None:
    await history(store, clock)
    figures = await store.opt_in_quality(SHOP, ("en-US",), now=NOW)
    rows = list(csv.DictReader(io.StringIO(quality_csv(figures))))
    header = next(csv.reader(io.StringIO(quality_csv(figures))))
    assert header == ["business", *COLUMNS, *DELIVERY_COLUMNS]  # appended at the end
    by_version = {(r["locale"], r["script_version"]): r for r in rows}
    v2 = by_version[("en-US", "2")]
    assert (v2["messages"], v2["failed"], v2["failed_rate"], v2["opt_in_in_force"]) == (
        "20",
        "12",
        "0.6000",
        "1",
    )
    assert v2["failures_by_error"] == "63016 x10; 63024 x2"
    assert v2["message_opted_out_7d_by_channel"] == "whatsapp 4; sms 1"
    assert v2["calls"] == "21"  # 20 opt-ins and one opt-out by phone
    none = by_version[("", "")]
    assert (none["opt_in_in_force"], none["messages"], none["calls"]) == ("0", "1", "")
    data = quality_json(figures)
    assert [d["messages"] for d in data["delivery"]] == [40, 20, 1]
    assert data["delivery"][1]["errors"][0] == {"code": 63016, "count": 10, "meaning": error_meaning(63016)}
    table = quality_table(figures)
    assert "63016 x10: Outside the 24-hour customer service window" in table.replace("ErrorCode ", "")
    assert "en-US v2" in table and "no opt-in in force" in table


def test_error_meanings_come_from_the_table() -> None:
    assert "24-hour" in error_meaning(63016)
    assert "recipient" in error_meaning(63024).lower()
    assert "Unreachable" in error_meaning(30003)
    assert error_meaning(99999) == "see https://www.twilio.com/docs/api/errors/99999"
    assert error_meaning(None) == "no ErrorCode reported"


# -- through the webhooks, `ivr stats` and the page ------------------------------------------


async def test_stats_and_the_page_show_delivery_after_real_callbacks(service: Service) -> None:
    await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
    sender = MessageStatusEmulator(service.twilio)
    wa = f"whatsapp:{ACME_NUMBER}"
    await sender.send(f"whatsapp:{CALLER}", wa, "read")
    await sender.send(f"whatsapp:{CALLER}", wa, "failed", error_code="63016")
    await sender.send("whatsapp:+14155550177", wa, "undelivered", error_code="63024")
    result = await ivr_async(service.db_url, "stats", "--business", ACME, "--format", "json")
    assert result.returncode == 0, result.stderr
    delivery = json.loads(result.stdout)["delivery"]
    assert [(d["locale"], d["messages"], d["delivered"], d["failed"]) for d in delivery] == [
        ("en-US", 2, 1, 1),
        (None, 1, 0, 1),
    ]
    table = await ivr_async(service.db_url, "stats", "--business", ACME)
    assert "63024" in table.stdout and "Invalid message recipient" in table.stdout
    await service.store.add_user("acme-mgr", "manager", quick_hash(PASSWORD), author="t", businesses=[ACME])
    await sign_in(service.client, "acme-mgr")
    page = html.unescape((await service.client.get("/manage/quality", params={"business": ACME})).text)
    assert 'id="delivery"' in page and "63016" in page and "Outside the 24-hour" in page
    assert "no opt-in in force" in page
    download = await service.client.get("/manage/quality.csv", params={"business": ACME})
    assert "failures_by_error" in download.text.splitlines()[0]
