"""The consent store's contract, run unchanged against both backends (SQLite and PostgreSQL).

Every test takes the `store` fixture, parametrised over the two backends; tampering
is done with raw SQL after switching the append-only triggers off, as an attacker
with database access would.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from consent_store import (
    Business,
    CallStatus,
    ConsentDecision,
    ConsentStore,
    ExportFilter,
    RecordingStatus,
    SQLiteStore,
    open_store,
    text_sha256,
)
from consent_store.columns import NAMES, csv_cells, render_csv
from consent_store.events import ApiToken
from consent_store.exceptions import (
    BusinessExists,
    NumberTaken,
    ScriptNotFound,
    TokenExists,
    UnknownBusiness,
    UserExists,
)

pytest_plugins = ["tests.pg_server"]

ACME = "Acme Parcels"
DEMO = "Demo Bakery"
SPOKEN = "Acme Parcels would like to send you delivery updates over WhatsApp. Press 1 to opt in."


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ConsentStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'contract.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    async with open_store(url) as opened:
        await opened.add_business(
            Business(ACME, ("+15550001111",), ("delivery updates",), ("en-US",)), {"en-US": SPOKEN}, "test"
        )
        await opened.add_business(
            Business(DEMO, ("+15550100100",), ("order updates",), ("en-US",), demo=True),
            {"en-US": SPOKEN},
            "t",
        )
        yield opened


def decision(
    n: int, action: str = "opt_in", business: str = ACME, phone: str | None = None
) -> ConsentDecision:
    return ConsentDecision(
        call_sid=f"CA{n:032d}",
        phone=phone or f"+1415555{n:04d}",
        business=business,
        action=action,  # type: ignore[arg-type]
        message_types=("delivery updates",),
        digits={"opt_in": "1", "declined": "2", "opt_out": "9"}[action],
        locale="en-US",
        script_version=1,
        script_sha256=text_sha256(SPOKEN),
        spoken_text=SPOKEN,
    )


async def tamper(store: ConsentStore, *statements: str) -> None:
    """Run raw SQL with the append-only triggers switched off, outside the store."""
    if isinstance(store, SQLiteStore):
        with contextlib.closing(sqlite3.connect(store.path)) as conn:
            triggers = conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall()
            for (name,) in triggers:
                conn.execute(f"DROP TRIGGER {name}")
            for statement in statements:
                conn.execute(statement)
            conn.commit()
        return
    conn = await asyncpg.connect(store.url)
    try:
        for table in ("events", "checkpoints", "chain_head"):
            await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER ALL")
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def test_appends_of_every_kind_form_one_verified_chain(store: ConsentStore) -> None:
    call_sid = decision(1).call_sid
    first = await store.record_decision(decision(1))
    recording = await store.attach_recording(RecordingStatus(call_sid, "RE1", "completed", "https://r/1", 31))
    status = await store.record_call_status(CallStatus(call_sid, "completed", 40, ACME))
    assert [first.seq, recording.seq, status.seq] == [3, 4, 5]
    assert recording.prev_hash == first.hash and status.prev_hash == recording.hash
    result = await store.verify()
    assert result.intact and result.count == 5 and result.head == status.hash
    assert await store.event_count() == 5
    assert await store.spoken_text(text_sha256(SPOKEN)) == SPOKEN


async def test_a_repeated_decision_returns_the_first_marked_duplicate(store: ConsentStore) -> None:
    first = await store.record_decision(decision(1))
    again = await store.record_decision(decision(1, action="declined"))
    assert again.duplicate and not first.duplicate
    assert (again.seq, again.hash, again.data["action"]) == (first.seq, first.hash, "opt_in")
    assert await store.count_decisions(ExportFilter()) == 1


async def test_200_concurrent_decisions_each_sent_three_times_make_200_records(store: ConsentStore) -> None:
    results = await asyncio.gather(*(store.record_decision(decision(n % 200)) for n in range(600)))
    assert sum(not r.duplicate for r in results) == 200
    assert len({r.seq for r in results}) == 200
    assert await store.count_decisions(ExportFilter()) == 200
    result = await store.verify()
    assert result.intact and result.count == 202


async def test_standing_is_the_latest_opt_in_or_opt_out(store: ConsentStore) -> None:
    phone = "+14155550123"
    assert await store.standing(phone, ACME) is None
    await store.record_decision(decision(1, "opt_in", phone=phone))
    await store.record_decision(decision(2, "declined", phone=phone))
    assert (standing := await store.standing(phone, ACME)) is not None and standing.action == "opt_in"
    latest = await store.record_decision(decision(3, "opt_out", phone=phone))
    standing = await store.standing(phone, ACME)
    assert standing is not None and (standing.action, standing.seq, standing.record_hash) == (
        "opt_out",
        latest.seq,
        latest.hash,
    )
    assert standing.message_types == ("delivery updates",)
    assert await store.standing(phone, DEMO) is None


async def _exported(store: ConsentStore, where: ExportFilter) -> list[str]:
    return [row.call_sid[-4:] async for row in store.export_decisions(where)]


async def test_export_filters_select_the_right_decisions(store: ConsentStore) -> None:
    await store.record_decision(decision(1, "opt_in"))
    middle = await store.record_decision(decision(2, "declined", phone="+14155550999"))
    await store.record_decision(decision(3, "opt_out", phone="+14155550999"))
    await store.record_decision(decision(4, "opt_in", business=DEMO))
    assert await _exported(store, ExportFilter()) == ["0001", "0002", "0003"]
    assert await _exported(store, ExportFilter(include_demo=True)) == ["0001", "0002", "0003", "0004"]
    assert await _exported(store, ExportFilter(business=DEMO, include_demo=True)) == ["0004"]
    assert await _exported(store, ExportFilter(action="opt_out")) == ["0003"]
    assert await _exported(store, ExportFilter(since=middle.recorded_at)) == ["0002", "0003"]
    assert await _exported(store, ExportFilter(until=middle.recorded_at)) == ["0001"]
    assert await _exported(store, ExportFilter(call_sid=decision(2).call_sid)) == ["0002"]
    assert await _exported(store, ExportFilter(phone="+14155550999")) == ["0002", "0003"]
    assert await store.count_decisions(ExportFilter(phone="+14155550999", action="declined")) == 1


async def test_export_joins_the_completed_recording_and_reads_one_snapshot(store: ConsentStore) -> None:
    stored = await store.record_decision(decision(1))
    call_sid = decision(1).call_sid
    await store.attach_recording(RecordingStatus(call_sid, "RE1", "completed", "https://r/RE1", 31))
    await store.attach_recording(RecordingStatus(call_sid, "RE1", "absent", None, None))
    [row] = [r async for r in store.export_decisions(ExportFilter())]
    assert (row.recording_sid, row.recording_url, row.recording_duration) == ("RE1", "https://r/RE1", 31)
    assert (row.phone, row.action, row.record_hash, row.seq) == ("+14155550001", "opt_in", stored.hash, 3)
    seen: list[tuple[int, str | None]] = []
    early = [
        r
        async for r in store.export_decisions(
            ExportFilter(through_seq=3), on_snapshot=lambda s, h: seen.append((s, h))
        )
    ]
    assert seen == [(3, stored.hash)] and early[0].recording_sid is None


async def test_caller_identity_is_read_back_and_old_decisions_keep_their_body(store: ConsentStore) -> None:
    hostile = "=cmd|' /C calc'!A0\r\nline two, \"quoted\" " + "x" * 10_000
    identity = {
        "stir_verstat": "TN-Validation-Passed-A",
        "called_number": "+15550001111",
        "account_sid": "AC" + "0" * 32,
        "from_country": "US",
        "caller_name": hostile,
    }
    plain = await store.record_decision(decision(1))
    await store.record_decision(dataclasses.replace(decision(2), **identity))
    assert "stir_verstat" not in plain.body and "caller_name" not in plain.body  # the body it always had
    old, new = [r async for r in store.export_decisions(ExportFilter())]
    assert all(getattr(old, key) is None for key in identity)
    assert {key: getattr(new, key) for key in identity} == identity
    chunks = store.export_csv_chunks(ExportFilter())
    written = b"".join([chunk.data async for chunk in chunks])
    assert written == render_csv([old, new])
    assert csv_cells(new)[NAMES.index("caller_name")] == "'" + hostile
    assert (await store.verify()).intact


async def test_registry_businesses_scripts_users_and_tokens(store: ConsentStore) -> None:
    acme = await store.get_business(ACME)
    assert acme.numbers == ("+15550001111",) and not acme.demo
    assert (await store.business_for_number("+15550100100")).name == DEMO  # type: ignore[union-attr]
    assert await store.business_for_number("+15559999999") is None
    assert [b.name for b in await store.list_businesses()] == [ACME, DEMO]
    with pytest.raises(BusinessExists):
        await store.add_business(Business(ACME, ("+15550002222",), ("x",), ("en-US",)), {"en-US": "x"}, "t")
    with pytest.raises(NumberTaken):
        await store.add_business(
            Business("Other", ("+15550001111",), ("x",), ("en-US",)), {"en-US": "x"}, "t"
        )
    with pytest.raises(UnknownBusiness):
        await store.get_business("Nobody")
    await store.save_draft(ACME, "en-US", "draft text", "ann")
    assert (await store.script_draft(ACME, "en-US")).text == "draft text"  # type: ignore[union-attr]
    published = await store.publish_script(ACME, "en-US", "version two", "ann")
    assert published.version == 2 and await store.script_draft(ACME, "en-US") is None
    assert [v.status for v in await store.script_versions(ACME, "en-US")] == ["published", "superseded"]
    assert (await store.script_version(ACME, "en-US")).text == "version two"
    with pytest.raises(ScriptNotFound):
        await store.script_version(ACME, "fr-FR")
    await store.set_message_types(ACME, ["delivery updates", "offers"], "ann")
    assert (await store.get_business(ACME)).message_types == ("delivery updates", "offers")
    await store.add_user("ann", "manager", "hash-1", "cli")
    with pytest.raises(UserExists):
        await store.add_user("ann", "auditor", "hash-2", "cli")
    await store.set_password("ann", "hash-3")
    assert (await store.get_user("ann")).password_hash == "hash-3"  # type: ignore[union-attr]
    await store.add_api_token("crm", "a" * 64, "ann")
    with pytest.raises(TokenExists):
        await store.add_api_token("crm", "b" * 64, "ann")
    assert await store.api_token_name("a" * 64) == "crm"
    assert await store.revoke_api_token("crm", "ann") and not await store.revoke_api_token("crm", "ann")
    assert await store.api_token_name("a" * 64) is None
    assert await store.setting_or_default("secret", "first") == "first"
    assert await store.setting_or_default("secret", "second") == "first"
    await store.ping()
    assert (await store.verify()).intact


async def test_sessions_limited_users_and_tokens_and_a_business_filter(store: ConsentStore) -> None:
    await store.add_user("dora", "auditor", "hash-1", "cli", businesses=[ACME])
    await store.add_user("root", "admin", "hash-2", "cli")
    dora = await store.get_user("dora")
    assert dora is not None and dora.businesses == (ACME,) and dora.last_sign_in is None
    assert [(u.name, u.role, u.businesses) for u in await store.list_users()] == [
        ("dora", "auditor", (ACME,)),
        ("root", "admin", None),
    ]
    with pytest.raises(UnknownBusiness):
        await store.add_user("eve", "auditor", "hash-3", "cli", businesses=["Nobody"])
    await store.start_session("s" * 64, "dora", 1_000)
    await store.touch_session("s" * 64, 1_100)
    await store.touch_session("s" * 64, 1_050)  # never backwards
    session = await store.web_session("s" * 64)
    assert session is not None and (session.user, session.created_at, session.last_seen) == (
        "dora",
        1_000,
        1_100,
    )
    assert (await store.get_user("dora")).last_sign_in is not None  # type: ignore[union-attr]
    await store.start_session("t" * 64, "dora", 1_000)
    await store.end_session("t" * 64, 1_200)
    assert (await store.web_session("t" * 64)).ended_at == 1_200  # type: ignore[union-attr]
    await store.set_user_disabled("dora", True, "root")
    assert (await store.web_session("s" * 64)).ended_at is not None  # type: ignore[union-attr]
    assert (await store.get_user("dora")).disabled  # type: ignore[union-attr]
    await store.purge_sessions(before=10**12)
    assert await store.web_session("s" * 64) is None
    await store.add_api_token("acme-crm", "c" * 64, "root", businesses=[ACME])
    assert await store.api_token("c" * 64) == ApiToken("acme-crm", (ACME,))
    await store.record_decision(decision(1))
    await store.record_decision(decision(2, business=DEMO))
    for limit, expected in (((ACME,), [ACME]), ((DEMO,), [DEMO]), ((), []), (None, [ACME, DEMO])):
        where = ExportFilter(businesses=limit, include_demo=True)
        assert [r.business async for r in store.export_decisions(where)] == expected
        assert await store.count_decisions(where) == len(expected)
    assert (await store.verify()).intact


async def test_forget_erases_the_phone_and_keeps_the_chain(store: ConsentStore) -> None:
    phone = "+14155550777"
    await store.record_decision(decision(1, phone=phone))
    await store.attach_recording(RecordingStatus(decision(1).call_sid, "RE9", "completed", "https://r/9", 3))
    erasure = await store.forget_phone(phone, "dpo", "asked by phone")
    assert erasure is not None and erasure.decisions == 1 and erasure.recording_sids == ("RE9",)
    assert await store.forget_phone(phone, "dpo", "again") is None
    [row] = [r async for r in store.export_decisions(ExportFilter())]
    assert row.phone is None
    assert await store.standing(phone, ACME) is None
    result = await store.verify()
    assert result.intact and result.head == erasure.record_hash


async def test_audit_reads_call_events_proofs_and_missing_recordings(store: ConsentStore) -> None:
    stored = await store.record_decision(decision(1))
    await store.record_decision(decision(2))
    await store.attach_recording(RecordingStatus(decision(2).call_sid, "RE2", "absent", None, None))
    events = await store.events_for_call(decision(1).call_sid)
    assert [e.seq for e in events] == [stored.seq]
    proof = await store.chain_proof(stored.seq)
    assert proof is not None and proof.record.hash == stored.hash and proof.head_seq == 5
    assert proof.next_prev_hash == stored.hash
    missing = await store.incomplete_evidence(grace_minutes=0)
    assert [(m.call_sid[-4:], m.reason) for m in missing] == [
        ("0002", "recording absent"),
        ("0001", "no recording after 0 minutes"),
    ]


async def test_opt_out_webhook_cursor_moves_forward_only(store: ConsentStore) -> None:
    await store.set_opt_out_webhook(ACME, "https://sender.example/opt-outs", "s3cret", "mia")
    [hook] = await store.opt_out_webhooks()
    assert (hook.business, hook.url, hook.secret, hook.failures) == (
        ACME,
        "https://sender.example/opt-outs",
        "s3cret",
        0,
    )
    first = await store.record_decision(decision(1, "opt_out"))
    await store.record_decision(decision(2, "opt_in"))
    second = await store.record_decision(decision(3, "opt_out"))
    notices = await store.opt_outs_after(ACME, hook.cursor_seq)
    assert [n.seq for n in notices] == [first.seq, second.seq] and notices[0].phone == decision(1).phone
    await store.opt_out_webhook_result(ACME, None, "HTTP 500")
    await store.opt_out_webhook_result(ACME, second.seq, None)
    await store.opt_out_webhook_result(ACME, first.seq, None)  # a late, older result
    [hook] = await store.opt_out_webhooks()
    assert (hook.cursor_seq, hook.failures, hook.last_error) == (second.seq, 0, None)
    assert await store.opt_outs_after(ACME, hook.cursor_seq) == []
    await store.set_opt_out_webhook(ACME, None, "", "mia")
    assert await store.opt_out_webhooks() == []


async def test_the_database_refuses_update_and_delete_of_events(store: ConsentStore) -> None:
    await store.record_decision(decision(1))
    for statement in (
        "UPDATE events SET action = 'opt_out' WHERE seq = 3",
        "DELETE FROM events WHERE seq = 3",
    ):
        if isinstance(store, SQLiteStore):
            with (
                contextlib.closing(sqlite3.connect(store.path)) as conn,
                pytest.raises(sqlite3.DatabaseError),
            ):
                conn.execute(statement)
        else:
            conn = await asyncpg.connect(store.url)
            try:
                with pytest.raises(asyncpg.PostgresError, match="append-only"):
                    await conn.execute(statement)
            finally:
                await conn.close()
    assert (await store.verify()).intact


@pytest.mark.parametrize(
    ("statements", "bad_seq", "problem"),
    [
        (("UPDATE events SET body = replace(body, '\"opt_in\"', '\"opt_out\"') WHERE seq = 5",), 5, "edited"),
        (("DELETE FROM events WHERE seq = 5",), 6, "expected record 5 next but found 6"),
        (("DELETE FROM events WHERE seq > 7",), 8, "tail deleted"),
    ],
    ids=["body-edited", "middle-deleted", "tail-truncated"],
)
async def test_verify_names_the_first_tampered_record(
    store: ConsentStore, statements: tuple[str, ...], bad_seq: int, problem: str
) -> None:
    for n in range(7):
        await store.record_decision(decision(n))
    await asyncio.sleep(0.25)  # SQLite's head file is rewritten at most every 0.2 s: let it catch up
    await store.record_decision(decision(7))
    assert (await store.verify()).count == 10
    await tamper(store, *statements)
    result = await store.verify()
    assert not result.intact
    assert result.first_bad_seq == bad_seq and problem in (result.problem or "")
