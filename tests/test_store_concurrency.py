"""Many callers at once, with Twilio retrying webhooks meanwhile: one record each, one chain, few commits."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest

from consent_store import ConsentDecision, ExportFilter, SQLiteStore, StoredEvent
from ivr.twilio.emulator import CallResult, TwilioEmulator
from tests.conftest import ACME, ACME_NUMBER, AUTH_TOKEN, Service

CALLERS = 100
CONFIRMED = "Your choice has been recorded"


class RetryingTwilio(TwilioEmulator):
    """Sends every webhook twice at once, as Twilio does when it retries a request that is slow to answer."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        super().__init__(client, "http://testserver", AUTH_TOKEN)
        self.pairs: list[tuple[Mapping[str, str], httpx.Response, httpx.Response]] = []

    async def post(
        self, url: str, params: Mapping[str, str], *, signed: bool = True, signature: str | None = None
    ) -> httpx.Response:
        first, second = await asyncio.gather(
            super().post(url, params, signed=signed, signature=signature),
            super().post(url, params, signed=signed, signature=signature),
        )
        self.pairs.append((params, first, second))
        return first


def events_by_kind(db_url: str) -> Counter[str]:
    with contextlib.closing(sqlite3.connect(db_url.removeprefix("sqlite:///"))) as db:
        return Counter(kind for (kind,) in db.execute("SELECT kind FROM events"))


def repeated_decision_calls(db_url: str) -> list[str]:
    with contextlib.closing(sqlite3.connect(db_url.removeprefix("sqlite:///"))) as db:
        query = "SELECT call_sid FROM events WHERE kind = 'decision' GROUP BY call_sid HAVING count(*) > 1"
        return [sid for (sid,) in db.execute(query)]


async def test_100_simultaneous_callers_with_retried_webhooks_leave_exactly_100_decisions(
    service: Service,
) -> None:
    retrying = RetryingTwilio(service.client)
    assert service.store._writer is not None
    commits_before, events_before = (
        service.store._writer.commits,
        sum(events_by_kind(service.db_url).values()),
    )

    async def place(i: int) -> CallResult:
        twilio = retrying if i % 4 == 0 else service.twilio
        return await twilio.call(ACME_NUMBER, f"+1415555{i:04d}", ["1" if i % 2 else "2"])

    calls = await asyncio.wait_for(asyncio.gather(*(place(i) for i in range(CALLERS))), timeout=120)

    assert all(CONFIRMED in call.transcript for call in calls)
    rows = [r async for r in service.store.export_decisions(ExportFilter())]
    assert len(rows) == CALLERS and repeated_decision_calls(service.db_url) == []
    assert {r.call_sid for r in rows} == {call.call_sid for call in calls}
    assert all(r.action == ("opt_in" if int(r.phone[-4:]) % 2 else "declined") for r in rows if r.phone)
    assert all(r.business == ACME and r.recording_sid for r in rows)
    written = events_by_kind(service.db_url)
    assert (written["decision"], written["recording"], written["call_status"]) == (CALLERS,) * 3

    retried_keys = [(p, a, b) for p, a, b in retrying.pairs if "Digits" in p]
    assert len(retried_keys) == CALLERS // 4
    assert all(a.status_code == b.status_code == 200 and a.text == b.text for _, a, b in retried_keys)
    assert all(CONFIRMED in a.text for _, a, _ in retried_keys)
    callbacks = [(a, b) for p, a, b in retrying.pairs if "RecordingSid" in p or "CallDuration" in p]
    assert len(callbacks) == 2 * CALLERS // 4 and all(
        a.status_code == b.status_code == 204 for a, b in callbacks
    )

    result = await service.store.verify()
    assert (result.intact, result.count) == (True, events_before + 3 * CALLERS)
    commits = service.store._writer.commits - commits_before
    assert commits <= 3 * CALLERS / 5, f"{commits} commits for {3 * CALLERS} events: no group commit"


def decision(i: int, variant: int) -> ConsentDecision:
    """Variant 1 of each call conflicts with the others: only the first one stored may count."""
    action = "declined" if variant == 1 else "opt_in"
    return ConsentDecision(
        call_sid=f"CA{i:032x}",
        phone=f"+1415555{i:04d}",
        business=ACME,
        action=action,
        message_types=("delivery updates",),
        digits="2" if variant == 1 else "1",
        locale="en-US",
        script_version=1,
        script_sha256="ab" * 32,
        spoken_text="Press 1 to agree.",
    )


@pytest.mark.parametrize("max_batch", [256, 7], ids=["default-batch", "batch-of-7"])
async def test_200_decisions_each_submitted_3_times_at_once_are_stored_once(
    tmp_path: Path, max_batch: int
) -> None:
    submissions = [decision(i, variant) for i in range(200) for variant in range(3)]
    random.Random(20261125).shuffle(submissions)
    async with SQLiteStore(tmp_path / "ivr.db", max_batch=max_batch) as store:
        assert store._writer is not None
        results = await asyncio.gather(*(store.record_decision(d) for d in submissions))
        rows = [r async for r in store.export_decisions(ExportFilter())]
        result = await store.verify()
        commits = store._writer.commits

    by_call: defaultdict[str, list[StoredEvent]] = defaultdict(list)
    for submitted, stored in zip(submissions, results, strict=True):
        by_call[submitted.call_sid].append(stored)
    assert len(by_call) == 200
    for stored in by_call.values():
        assert len({(s.seq, s.hash) for s in stored}) == 1  # the three answers are the one record
        assert [s.duplicate for s in stored].count(False) == 1
    assert sorted(r.seq for r in rows) == list(range(1, 201))
    assert {r.call_sid: r.action for r in rows} == {
        sid: str(stored[0].data["action"]) for sid, stored in by_call.items()
    }
    assert (result.intact, result.count) == (True, 200)
    assert commits <= len(submissions) / 5, f"{commits} commits for {len(submissions)} appends"
