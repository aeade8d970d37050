"""Opt-in quality figures and flags on generated call histories with known answers.

The store's clock is set per event (the writer stamps `recorded_at` itself), so the
histories span months; everything else goes through the real store API and the chain.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator

import pytest

from consent_store import (
    Business,
    CallStatus,
    ConsentDecision,
    ConsentStore,
    PromptPlayed,
    open_store,
    text_sha256,
)
from consent_store.stats import Period, QualityFigures, ScriptFigures
from ivr.quality.report import (
    quality_csv,
    quality_flags,
    quality_json,
    two_proportion_p,
    with_frequency_changes,
)
from ivr.scripts_admin import publish_checked
from tests.conftest import ACME, ACME_NUMBER, Service

pytest_plugins = ["tests.pg_server"]

SHOP = "Corner Shop"
DUO = "Duo Travel"
SPOKEN = "Corner Shop would like to send you offers over WhatsApp. Press 1 to opt in."
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NOW = T0 + dt.timedelta(days=100)
KEYS = {"opt_in": "1", "declined": "2", "opt_out": "9"}


class Clock:
    """What `utc_now` answers: a settable time that ticks a microsecond per call."""

    def __init__(self) -> None:
        self.at = T0

    def __call__(self) -> str:
        self.at += dt.timedelta(microseconds=1)
        return self.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def set(self, days: float) -> None:
        self.at = T0 + dt.timedelta(days=days)


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
            Business(SHOP, ("+15550002222",), ("offers",), ("en-US",)), {"en-US": SPOKEN}, "t"
        )
        await opened.add_business(
            Business(DUO, ("+15550003333",), ("trips",), ("en-US", "es-ES")),
            {"en-US": SPOKEN, "es-ES": SPOKEN},
            "t",
        )
        yield opened


class History:
    """Appends calls: prompts, a decision and/or a call status, each with its own CallSid."""

    def __init__(self, store: ConsentStore, clock: Clock) -> None:
        self.store, self.clock, self.calls = store, clock, 0

    async def call(
        self,
        day: float,
        action: str | None,
        phone: str | None = None,
        *,
        version: int = 1,
        status: str | None = "completed",
        duration: int = 30,
        business: str = SHOP,
        locale: str = "en-US",
        heard: int | None = None,
        seconds: float | None = None,
        gave_up: bool = False,
    ) -> None:
        """One call; `heard` prompts (re-prompts recorded), `gave_up`: the goodbye after them."""
        self.calls += 1
        self.clock.set(day)
        sid = f"CA{self.calls:032d}"
        for n in range(2, (heard or 1) + 1):
            await self.store.record_prompt(
                PromptPlayed(sid, business, "consent", "no_input", n, locale, version)
            )
        if gave_up:
            await self.store.record_prompt(
                PromptPlayed(sid, business, "goodbye", "no_input", heard or 1, locale, version)
            )
        if action is not None:
            await self.store.record_decision(
                ConsentDecision(
                    sid,
                    phone or f"+1415555{self.calls:04d}",
                    business,
                    action,  # type: ignore[arg-type]
                    ("offers",),
                    KEYS[action],
                    locale,
                    version,
                    text_sha256(SPOKEN),
                    SPOKEN,
                    heard,
                    seconds,
                )
            )
        if status is not None:
            await self.store.record_call_status(CallStatus(sid, status, duration, business))


async def known_history(store: ConsentStore, clock: Clock) -> History:
    """Version 1 on day 1, version 2 (published day 2) on day 3; later opt-outs from day 4 on.

    Version 1's decisions say how many prompts were heard and when the key was pressed;
    version 2's are recorded as before that was tracked (neither is known).
    """
    h = History(store, clock)
    durations = iter(range(1, 91))  # the 90 decided calls of version 1 last 1..90 s: median 45.5
    for n in range(60):
        d = next(durations)
        await h.call(1, "opt_in", f"+1202555{n:04d}", duration=d, heard=1, seconds=d - 0.5)
    for action, count, heard in (("declined", 20, 2), ("opt_out", 10, 1)):
        for _ in range(count):
            d = next(durations)
            await h.call(1, action, duration=d, heard=heard, seconds=d - 0.5)
    for _ in range(6):
        await h.call(1, None)  # answered, hung up during the first prompt
    for _ in range(4):
        await h.call(1, None, heard=3, gave_up=True)  # no key after three prompts
    for _ in range(5):
        await h.call(1, None, status="no-answer", duration=0)
    clock.set(2)
    await store.publish_script(SHOP, "en-US", SPOKEN + " ", "mia")
    for n in range(40):
        await h.call(3, "opt_in", f"+1303555{n:04d}", version=2, duration=20)
    for action, count in (("declined", 20), ("opt_out", 10)):
        for _ in range(count):
            await h.call(3, action, version=2, duration=20)
    for _ in range(25):
        await h.call(3, None)
    for _ in range(5):
        await h.call(3, None, version=2, heard=3, gave_up=True)
    # Later opt-outs: v1 six after 3 days, three after 20, two after 40; v2 sixteen after 10.
    for first, count, day in ((0, 6, 4), (6, 3, 21), (9, 2, 41)):
        for n in range(first, first + count):
            await h.call(day, "opt_out", f"+1202555{n:04d}", version=2)
    for n in range(16):
        await h.call(13, "opt_out", f"+1303555{n:04d}", version=2)
    return h


async def figures(store: ConsentStore, since: float = 0, until: float = 4) -> QualityFigures:
    iso = "%Y-%m-%dT%H:%M:%S.%fZ"
    return await store.opt_in_quality(
        SHOP,
        ("en-US",),
        Period((T0 + dt.timedelta(days=since)).strftime(iso), (T0 + dt.timedelta(days=until)).strftime(iso)),
        now=NOW,
    )


async def test_each_figure_per_script_version_matches_the_generated_history(
    store: ConsentStore, clock: Clock
) -> None:
    await known_history(store, clock)
    v1, v2 = (await figures(store)).scripts
    # prompts heard, v1: 60 x 1 + 20 x 2 + 10 x 1 decided, 6 x 1 hung up, 4 x 3 no input = 128
    assert v1 == ScriptFigures("en-US", 1, 105, 5, 6, 4, 60, 20, 10, 128, 45.0, 45.5, 60, 6, 60, 9)
    # v2: 70 decided and 25 hung up heard one prompt each, 5 x 3 no input = 110; no times known
    assert v2 == ScriptFigures("en-US", 2, 100, 0, 25, 5, 40, 20, 10, 110, None, 20.0, 40, 0, 40, 16)
    assert (v1.answered, v1.decided, v1.undecided, v1.prompts_per_call) == (100, 90, 10, 1.28)
    assert (await store.verify()).intact


async def test_a_worse_version_is_flagged_with_both_counts(store: ConsentStore, clock: Clock) -> None:
    await known_history(store, clock)
    flags = quality_flags(await figures(store))
    by_kind = {f.kind: f for f in flags}
    assert set(by_kind) == {"hung_up_rate", "opted_out_30d_rate"}
    hung_up = by_kind["hung_up_rate"]
    assert (hung_up.script_version, hung_up.previous_version) == (2, 1)
    assert (hung_up.count, hung_up.total, hung_up.previous_count, hung_up.previous_total) == (25, 100, 6, 100)
    assert "hang-up rate 25/100 (25.0%) vs version 1 6/100 (6.0%)" in hung_up.message
    regret = by_kind["opted_out_30d_rate"]
    assert (regret.count, regret.total, regret.previous_count, regret.previous_total) == (16, 40, 9, 60)
    assert regret.p_value is not None and regret.p_value < 0.05


async def test_opt_ins_younger_than_the_window_are_not_counted_yet(store: ConsentStore, clock: Clock) -> None:
    await known_history(store, clock)
    iso = "%Y-%m-%dT%H:%M:%S.%fZ"
    early = await store.opt_in_quality(
        SHOP,
        ("en-US",),
        Period(None, (T0 + dt.timedelta(days=4)).strftime(iso)),
        now=T0 + dt.timedelta(days=20),
    )
    v1, v2 = early.scripts
    # On day 20, version 1's opt-ins (day 1) are 19 days old: old enough for 7 days, not 30.
    assert (v1.followed_7d, v1.opted_out_7d, v1.followed_30d, v1.opted_out_30d) == (60, 6, 0, 0)
    assert (v2.followed_7d, v2.followed_30d) == (40, 0)


async def test_message_types_changed_after_callers_opted_in_is_flagged(
    store: ConsentStore, clock: Clock
) -> None:
    history = await known_history(store, clock)
    clock.set(50)
    await store.set_message_types(SHOP, ["offers", "news"], "mia")
    # 100 opted in, 11 + 16 opted out since; one of the rest agrees again after the change.
    await history.call(51, "opt_in", "+12025550020", version=2)
    found = await figures(store, 0, 100)
    change = found.message_types_change
    assert change is not None and change.message_types == ("offers", "news")
    assert change.opted_in_before == 72
    flag = next(f for f in quality_flags(found) if f.kind == "message_types_changed")
    assert flag.count == 72 and "offers; news" in flag.message


async def test_an_opt_out_ends_only_the_latest_opt_in(store: ConsentStore, clock: Clock) -> None:
    h = History(store, clock)
    await h.call(1, "opt_in", "+14155550001")
    await h.call(2, "opt_in", "+14155550001")
    await h.call(5, "opt_out", "+14155550001")
    [v1] = (await figures(store, 0, 3)).scripts
    assert (v1.opt_in, v1.followed_7d, v1.opted_out_7d, v1.opted_out_30d) == (2, 2, 1, 1)


async def test_a_multilingual_callers_language_is_unknown_without_a_decision(
    store: ConsentStore, clock: Clock
) -> None:
    h = History(store, clock)
    await h.call(1, "opt_in", business=DUO, locale="es-ES")
    await h.call(1, None, business=DUO)
    await h.call(1, None, business=DUO, status="busy")
    await h.call(1, None, business=DUO, locale="en-US", heard=2)  # chose English, then hung up
    found = await store.opt_in_quality(DUO, ("en-US", "es-ES"), now=NOW)
    assert [(s.locale, s.script_version, s.calls, s.undecided, s.unanswered) for s in found.scripts] == [
        ("en-US", 1, 1, 1, 0),
        ("es-ES", 1, 1, 0, 0),
        (None, None, 2, 1, 1),
    ]
    assert quality_flags(found) == []
    assert quality_csv(found).splitlines()[3].startswith("Duo Travel,,,2,1,1,")
    assert quality_json(found)["scripts"][2]["locale"] is None


def figs(hung_up: int, answered: int, out30: int = 0, followed: int = 0, version: int = 1) -> ScriptFigures:
    return ScriptFigures(
        "en-US", version, answered, 0, hung_up, 0, answered - hung_up, 0, 0, answered, None, None, 0, 0,
        followed, out30,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("before", "after", "flagged"),
    [
        ((10, 100), (30, 100), True),  # +20 points, p < 0.001
        ((10, 100), (16, 100), False),  # +6 points, p = 0.2: could be chance
        ((1000, 10000), (1400, 10000), False),  # highly significant but only +4 points
        ((30, 100), (10, 100), False),  # better, not worse
        ((0, 0), (10, 100), False),  # nothing to compare with
    ],
)
def test_flag_rule_needs_five_points_and_p_below_five_percent(
    before: tuple[int, int], after: tuple[int, int], flagged: bool
) -> None:
    found = QualityFigures(SHOP, None, None, "", (figs(*before), figs(*after, version=2)), None)
    assert bool(quality_flags(found)) is flagged


def test_two_proportion_z_test_matches_a_worked_example() -> None:
    # 30/100 vs 10/100: pooled 0.2, z = 3.536, two-sided p = 0.000407
    p = two_proportion_p(30, 100, 10, 100)
    assert p is not None and abs(p - 0.000407) < 0.00001
    assert two_proportion_p(0, 10, 0, 10) is None


async def test_a_new_promised_frequency_flags_callers_who_agreed_to_the_old_one(service: Service) -> None:
    for caller in ("+14155550001", "+14155550002", "+14155550003"):
        await service.twilio.call(ACME_NUMBER, caller, ["1"])
    await service.twilio.call(ACME_NUMBER, "+14155550003", ["9"])  # opted out again: not counted
    business = await service.store.get_business(ACME)
    text = (await service.store.script_version(ACME, "en-US")).text
    newer = text.replace("no more than four messages a month", "up to two messages a week")
    await publish_checked(service.store, business, "en-US", newer, "mia")
    await service.twilio.call(ACME_NUMBER, "+14155550004", ["1"])  # agreed to the new promise
    figures = await service.store.opt_in_quality(ACME, business.locales)
    figures = await with_frequency_changes(service.store, figures, business.locales)
    [change] = figures.frequency_changes
    assert (change.locale, change.version, change.opted_in_before) == ("en-US", 2, 2)
    assert change.previous == "no more than four messages a month"
    assert change.frequency == "up to two messages a week"
    [flag] = [f for f in quality_flags(figures) if f.kind == "frequency_changed"]
    assert flag.count == 2 and "up to two messages a week" in flag.message
