"""One "completed recording" rule and one decision-with-recording query (consent_store.decisions),
on both backends and on SQLite's fast path, over hostile recording statuses.

A recording's status is what the callback's form said: a status such as "x:completed" makes
the idempotency key end with ":completed" without being a completed recording. Every read
(export rows, CSV fast path, /audit/incomplete, the archive's fetch list) must agree.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import pytest

from consent_store import (
    Business,
    ConsentDecision,
    ConsentStore,
    ExportFilter,
    RecordingStatus,
    SQLiteStore,
    open_store,
    text_sha256,
)
from consent_store.columns import render_csv
from consent_store.decisions import completed_sql
from consent_store.stats import StatsMixin

pytest_plugins = ["tests.pg_server"]

ACME = "Acme Parcels"
SPOKEN = "Acme Parcels would like to send you delivery updates over WhatsApp. Press 1 to opt in."
# (A NUL cannot be stored: PostgreSQL refuses it in text, and the webhook takes only Twilio's four statuses.)
HOSTILE = ("x:completed", "Completed", "completed ", " completed", "completed:", ":completed", "")


@pytest.fixture
def store(acme_store: ConsentStore) -> ConsentStore:
    return acme_store


def decision(n: int) -> ConsentDecision:
    return ConsentDecision(
        call_sid=f"CA{n:032d}",
        phone=f"+1415555{n:04d}",
        business=ACME,
        action="opt_in",
        message_types=("delivery updates",),
        digits="1",
        locale="en-US",
        script_version=1,
        script_sha256=text_sha256(SPOKEN),
        spoken_text=SPOKEN,
    )


async def fill(store: ConsentStore) -> None:
    """Call 1: completed, then hostile look-alikes, then absent. Call 2: look-alikes only.
    Call 3: one completed. Call 4: no recording."""
    for n in (1, 2, 3, 4):
        await store.record_decision(decision(n))
    one, two, three = (decision(n).call_sid for n in (1, 2, 3))
    await store.attach_recording(RecordingStatus(one, "RE1", "completed", "https://r/1", 31))
    for i, status in enumerate(HOSTILE):
        await store.attach_recording(RecordingStatus(one, f"REh{i}", status, f"https://r/h{i}", 1))
        await store.attach_recording(RecordingStatus(two, f"REt{i}", status, f"https://r/t{i}", 2))
    await store.attach_recording(RecordingStatus(one, "RE1", "absent", None, None))
    await store.attach_recording(RecordingStatus(three, "RE3", "completed", "https://r/3", 3))


async def test_a_decision_shows_its_completed_recording_never_a_look_alike(store: ConsentStore) -> None:
    await fill(store)
    rows = [row async for row in store.export_decisions(ExportFilter())]
    last = f"REt{len(HOSTILE) - 1}"  # call 2 has no completed recording: its latest status
    assert [row.recording_sid for row in rows] == ["RE1", last, "RE3", None]
    assert rows[0].recording_url == "https://r/1" and rows[0].recording_duration == 31
    written = b"".join([chunk.data async for chunk in store.export_csv_chunks(ExportFilter())])
    assert written == render_csv(rows)  # SQLite: its fast path; PostgreSQL: rendered in Python


async def test_audit_and_archive_reads_use_the_same_rule(store: ConsentStore) -> None:
    await fill(store)
    incomplete = await store.incomplete_evidence(grace_minutes=0)
    assert sorted(i.call_sid for i in incomplete) == [decision(2).call_sid, decision(4).call_sid]
    to_fetch = await store.recordings_to_fetch()
    assert [r.recording_sid for r in to_fetch] == ["RE1", "RE3"]


async def test_the_rule_selects_exactly_the_recordings_whose_status_is_completed(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    async with open_store(f"sqlite:///{path}") as opened:
        await opened.add_business(
            Business(ACME, ("+15550001111",), ("delivery updates",), ("en-US",)), {"en-US": SPOKEN}, "t"
        )
        await fill(opened)
        assert isinstance(opened, SQLiteStore)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        every = conn.execute("SELECT seq, body FROM events WHERE kind = 'recording' ORDER BY seq").fetchall()
        rule = completed_sql(StatsMixin._json_text)
        sql = f"SELECT r.seq FROM events r WHERE r.kind = 'recording' AND {rule} ORDER BY r.seq"
        selected = [seq for (seq,) in conn.execute(sql)]
        key_only = conn.execute(
            "SELECT count(*) FROM events WHERE kind = 'recording' AND idempotency_key LIKE '%:completed'"
        ).fetchone()[0]
    exact = [seq for seq, body in every if json.loads(body)["data"]["status"] == "completed"]
    assert selected == exact and len(exact) == 2
    assert key_only > len(exact)  # the key alone takes "x:completed": the status test is needed
