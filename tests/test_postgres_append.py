"""The PostgreSQL append in one server-side step (`consent_store_append`): bodies, hashes,
order and idempotency exactly as the shared chain rules say, however many writers."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from consent_store import (
    Business,
    CallStatus,
    ConsentDecision,
    PostgresStore,
    RecordingStatus,
    open_store,
    text_sha256,
)
from consent_store.chain import chain_event
from consent_store.events import NewEvent
from consent_store.exceptions import BusinessExists, ConflictingWrite
from consent_store.postgres.writer import body_prefix

pytest_plugins = ["tests.pg_server"]

# What JSON must escape or keep as is: quotes, backslashes, controls, line separators,
# astral-plane emoji, non-Latin scripts, markup.
AWKWARD = [
    'Zoë\'s "Café" \\ back\\slash',
    "party 🎉👍🏽 time",
    "controls \x01\x1f\t\n\r\x7f",
    "separators \u2028\u2029",
    "</script><!-- -->",
    "日本語のテキスト",
    "null",
    "",
]


def awkward_decision(n: int, text: str) -> ConsentDecision:
    return ConsentDecision(
        call_sid=f"CA{n:04d}{text}",
        phone=f"+1415555{n:04d}",
        business=f"Biz {text}",
        action="opt_in",
        message_types=(text, "updates"),
        digits="1",
        locale="en-US",
        script_version=n,
        script_sha256=text_sha256(text),
        spoken_text=f"Press 1 {text}",
        prompts_heard=n,
        seconds_to_decision=n / 3,
    )


async def stored_rows(url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(
            await conn.fetch(
                "SELECT seq, recorded_at, kind, idempotency_key, call_sid, business, subject, action,"
                " body, prev_hash, hash FROM events ORDER BY seq"
            )
        )
    finally:
        await conn.close()


@pytest.mark.parametrize("text", AWKWARD)
def test_the_body_prefix_is_the_canonical_body_up_to_the_keys_the_database_adds(text: str) -> None:
    event = awkward_decision(7, text).to_event()
    full = chain_event(event, 12345, "0" * 64, "2024-01-02T03:04:05.678901Z", "ab" * 32).body
    suffix = '"recorded_at":"2024-01-02T03:04:05.678901Z","seq":12345,"subject":"' + "ab" * 32 + '"}'
    assert body_prefix(event) + suffix == full


async def test_bodies_and_hashes_built_in_the_database_are_those_chain_event_builds(pg_url: str) -> None:
    async with open_store(pg_url) as store:
        events: dict[str, NewEvent] = {}
        decisions = [awkward_decision(n, text) for n, text in enumerate(AWKWARD)]
        for stored in await asyncio.gather(*(store.record_decision(d) for d in decisions)):
            assert not stored.duplicate
        for d in decisions:
            events[d.to_event().idempotency_key] = d.to_event()
        for n, text in enumerate(AWKWARD):
            recording = RecordingStatus(f"CA{n}", f"RE{text}", "completed", f"https://r/{text}", n)
            status = CallStatus(f"CA{n}", "completed", n, f"Biz {text}")
            for extra in (recording, status):
                await store._append(extra.to_event())
                events[extra.to_event().idempotency_key] = extra.to_event()
        assert (await store.verify()).intact
        spoken = await store.spoken_text(text_sha256(f"Press 1 {AWKWARD[0]}"))
        assert spoken == f"Press 1 {AWKWARD[0]}"

    rows = await stored_rows(pg_url)
    assert [r["seq"] for r in rows] == list(range(1, len(events) + 1))
    for row in rows:
        expected = chain_event(
            events[row["idempotency_key"]], row["seq"], row["prev_hash"], row["recorded_at"], row["subject"]
        )
        assert tuple(row) == tuple(expected)
    assert all(r["subject"] for r in rows if r["kind"] == "decision")
    assert [r["recorded_at"] for r in rows] == sorted(r["recorded_at"] for r in rows)


def phone_decision(n: int, phone: str) -> ConsentDecision:
    return ConsentDecision(
        f"CA{n:032d}", phone, "Acme", "opt_in", ("updates",), "1", "en-US", 1, text_sha256("hi"), "hi"
    )


async def test_writers_of_several_processes_share_subjects_and_keep_times_rising_with_seq(
    pg_url: str,
) -> None:
    """Three stores (pools and writers, as three processes have); callers repeat phones across them."""
    stores = [PostgresStore(pg_url, max_batch=16) for _ in range(3)]
    for store in stores:
        await store.open()
    try:
        phones = [f"+1415777{n:04d}" for n in range(40)]
        sent = [
            store.record_decision(phone_decision(n, phones[n % len(phones)]))
            for n in range(400)
            for store in stores
        ]
        results = await asyncio.gather(*sent)
        assert sum(not r.duplicate for r in results) == 400
        result = await stores[0].verify()
        assert result.intact and result.count == 400
    finally:
        for store in stores:
            await store.close()
    rows = await stored_rows(pg_url)
    assert [r["recorded_at"] for r in rows] == sorted(r["recorded_at"] for r in rows)
    subjects = {r["subject"] for r in rows}
    assert len(subjects) == len(phones), "one subject per phone, whichever writer saw it first"


async def test_business_changes_appended_beside_decisions_keep_each_outcome(pg_url: str) -> None:
    """Statements beside events run under the lock; one that clashes fails alone."""
    async with open_store(pg_url) as store:
        first = Business("First", ("+15550001111",), ("updates",), ("en-US",))
        same_number = Business("Second", ("+15550001111",), ("updates",), ("en-US",))
        outcomes = await asyncio.gather(
            store.add_business(first, {"en-US": "hi"}, "t"),
            store.add_business(first, {"en-US": "hi"}, "t"),
            *(store.record_decision(phone_decision(n, f"+1415777{n:04d}")) for n in range(20)),
            store.add_business(same_number, {"en-US": "hi"}, "t"),
            return_exceptions=True,
        )
        one, other, *decided, clash = outcomes
        assert not any(isinstance(d, BaseException) for d in decided)
        # Three concurrent adds want one number; whichever reaches the database first takes it
        # (each add reads before it queues, so arrival order is not the order of the calls).
        [holder] = await store.list_businesses()
        assert holder.numbers == ("+15550001111",)
        if holder.name == "First":
            # Either identical add may win; the other is the same record marked duplicate, or
            # refused outright when the winner committed before it looked.
            winners = [o for o in (one, other) if not isinstance(o, BaseException) and not o.duplicate]
            assert len(winners) == 1, (one, other)
            [created] = winners
            again = other if one is created else one
            assert isinstance(again, BusinessExists) or (
                not isinstance(again, BaseException) and again.duplicate and again.seq == created.seq
            ), again
            assert isinstance(clash, ConflictingWrite), clash
        else:  # the other business took the number first: both adds of First fail alone
            assert holder.name == "Second" and not isinstance(clash, BaseException), clash
            assert all(isinstance(o, ConflictingWrite) for o in (one, other)), (one, other)
        result = await store.verify()
        assert result.intact and result.count == 21


async def test_a_phone_erased_while_its_decision_waits_for_the_lock_gets_a_new_subject(pg_url: str) -> None:
    phone = "+14155550123"
    async with open_store(pg_url) as store:
        first = await store.record_decision(phone_decision(1, phone))
        blocker = await asyncpg.connect(pg_url)
        try:
            async with blocker.transaction():
                await blocker.execute("SELECT 1 FROM chain_head FOR UPDATE")
                waiting = asyncio.create_task(store.record_decision(phone_decision(2, phone)))
                await _until_a_writer_waits_for_the_lock(blocker)
                # The subject row goes while the decision, its subject already looked for, waits.
                await blocker.execute("DELETE FROM subjects WHERE phone = $1", phone)
            second = await waiting
        finally:
            await blocker.close()
        standing = await store.standing(phone, "Acme")
        assert standing is not None and standing.seq == second.seq
    rows = await stored_rows(pg_url)
    assert rows[-1]["subject"] is not None and rows[-1]["subject"] != rows[-2]["subject"]
    assert first.seq == rows[-2]["seq"]


async def _until_a_writer_waits_for_the_lock(conn: asyncpg.Connection) -> None:
    for _ in range(250):
        if await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the writer never waited for the chain lock")
