"""Retention, erasure, legal holds and deletion at Twilio: audio goes, its SHA-256 stays in the chain
(`ivr verify` still passes, and does not call a deleted recording missing); a hold stops purge and
refuses erasure; every deletion is chained."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from consent_store import ConsentStore
from consent_store.events import ArchivedRecording
from consent_store.recording_holds import change_legal_hold, set_recording_retention
from ivr.recordings.archive import open_archive
from ivr.recordings.fetch import fetcher_of
from ivr.recordings.retention import purge
from ivr.recordings.sync import reconcile
from ivr.twilio.emulator import CallResult
from tests.cli_runner import ivr_with_env as ivr  # in-process; tests/live_server.py's ivr as was
from tests.conftest import ACME, ACME_NUMBER, CALLER
from tests.test_recording_sync import ACCOUNT, Env, Running, emulated, running

pytest_plugins = ["tests.pg_server"]

LATER = dt.datetime.now(dt.UTC) + dt.timedelta(days=3 * 366)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with emulated(tmp_path) as found:
        yield found


async def archived(service: Running, call: CallResult) -> ArchivedRecording:
    for _ in range(300):
        found = await service.store.archived_recording(call.call_sid)
        if found is not None:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("never archived")


async def deletions(store: ConsentStore) -> list[dict[str, object]]:
    rows = await store._fetchall("SELECT body FROM events WHERE kind = 'recording_deleted' ORDER BY seq")
    return [json.loads(r[0])["data"] for r in rows]


def verify(env: Env) -> None:
    result = ivr(env.cli_env(), "verify")
    assert result.returncode == 0, result.stdout + result.stderr


async def test_purge_deletes_expired_audio_keeps_the_hash_and_verify_passes(env: Env) -> None:
    async for service in running(env):
        call = await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
        recording = await archived(service, call)
        await set_recording_retention(service.store, ACME, 2, "test")
        archive = open_archive(env.settings())
        assert (await purge(service.store, archive, "test")).from_archive == []  # not expired yet
        report = await purge(service.store, archive, "test", now=LATER)
        assert report.from_archive == [call.recording_sid]
        assert not Path(recording.location).exists()
        assert await deletions(service.store) == [
            {
                "recording_sid": call.recording_sid,
                "sha256": recording.sha256,
                "where": "archive",
                "reason": "purge",
                "author": "test",
            }
        ]
        # Idempotent: nothing more to purge, nothing chained twice.
        assert (await purge(service.store, archive, "test", now=LATER)).from_archive == []
        assert len(await deletions(service.store)) == 1
        # The decision still names the hash; the chain still verifies.
        still = await service.store.archived_recording(call.call_sid)
        assert still is not None and still.sha256 == recording.sha256
    verify(env)
    gone = ivr(
        env.cli_env(), "recordings", "get", "--call-sid", call.call_sid, "-o", str(env.tmp_path / "x.wav")
    )
    assert gone.returncode == 2 and "deleted from the archive (purge)" in gone.stderr


async def test_the_cli_purge_keeps_what_is_not_expired(env: Env) -> None:
    async for service in running(env):
        call = await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
        recording = await archived(service, call)
    set_years = ivr(env.cli_env(), "business", "retention", "--name", ACME, "--years", "1")
    assert set_years.returncode == 0 and "kept 1 year(s)" in set_years.stdout
    result = ivr(env.cli_env(), "recordings", "purge")
    assert result.returncode == 0 and "Purged 0 recording(s)" in result.stdout
    assert Path(recording.location).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "Nobody", "--years", "2"], "No business named 'Nobody'"),
        (["--name", ACME, "--years", "-1"], "-1"),
        (["--name", ACME, "--years", "many"], "many"),
        (["--name", ACME, "--years", "1000"], "1000"),
    ],
)
async def test_bad_retention_is_refused_in_one_line(env: Env, args: list[str], message: str) -> None:
    async for _service in running(env):
        pass
    result = ivr(env.cli_env(), "business", "retention", *args)
    assert result.returncode == 2 and message in result.stderr


@pytest.mark.parametrize("target", ["business", "phone"])
async def test_a_legal_hold_stops_purge_until_released(env: Env, target: str) -> None:
    async for service in running(env):
        call = await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
        recording = await archived(service, call)
        await set_recording_retention(service.store, ACME, 1, "test")
    where = ["--business", ACME] if target == "business" else ["--phone", CALLER]
    held = ivr(env.cli_env(), "recordings", "hold", *where, "--reason", "litigation 42")
    assert held.returncode == 0 and "is under a legal hold" in held.stdout
    again = ivr(env.cli_env(), "recordings", "hold", *where)
    assert again.returncode == 0 and "already" in again.stdout
    listed = ivr(env.cli_env(), "recordings", "holds")
    assert "litigation 42" in listed.stdout and (ACME if target == "business" else CALLER) in listed.stdout
    async for service in running(env):
        archive = open_archive(env.settings())
        report = await purge(service.store, archive, "test", now=LATER)
        assert report.from_archive == [] and report.held == [call.recording_sid]
        assert Path(recording.location).exists()
    released = ivr(env.cli_env(), "recordings", "release", *where)
    assert released.returncode == 0 and "no longer under a legal hold" in released.stdout
    async for service in running(env):
        report = await purge(service.store, open_archive(env.settings()), "test", now=LATER)
        assert report.from_archive == [call.recording_sid] and not Path(recording.location).exists()
    verify(env)


async def test_releasing_a_hold_that_is_not_there_is_refused(env: Env) -> None:
    async for _service in running(env):
        pass
    result = ivr(env.cli_env(), "recordings", "release", "--business", ACME)
    assert result.returncode == 2 and "no legal hold" in result.stderr
    both = ivr(env.cli_env(), "recordings", "hold", "--business", ACME, "--phone", CALLER)
    assert both.returncode == 2 and "one of --phone or --business" in both.stderr
    bad = ivr(env.cli_env(), "recordings", "hold", "--phone", "555-not-a-phone")
    assert bad.returncode == 2 and "--phone" in bad.stderr


async def test_forget_deletes_the_callers_audio_chains_it_and_verify_passes(env: Env) -> None:
    async for service in running(env):
        mine = await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
        other = await service.twilio.call(ACME_NUMBER, "+14155550999", ["1"])
        my_audio, other_audio = await archived(service, mine), await archived(service, other)
    result = ivr(env.cli_env(), "forget", "--phone", CALLER)
    assert result.returncode == 0, result.stderr
    assert "Deleted 1 archived recording(s)" in result.stdout
    assert not Path(my_audio.location).exists() and Path(other_audio.location).exists()
    async for service in running(env):
        [deleted] = await deletions(service.store)
        assert (deleted["recording_sid"], deleted["reason"], deleted["where"]) == (
            mine.recording_sid,
            "erasure",
            "archive",
        )
    verify(env)


async def test_forget_under_a_legal_hold_is_refused_and_deletes_nothing(env: Env) -> None:
    async for service in running(env):
        call = await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
        recording = await archived(service, call)
        await change_legal_hold(service.store, held=True, author="test", reason="court order", business=ACME)
        count = await service.store.event_count()
    result = ivr(env.cli_env(), "forget", "--phone", CALLER)
    assert result.returncode == 2 and "erasure refused" in result.stderr and "legal hold" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert Path(recording.location).exists()
    async for service in running(env):
        assert await service.store.event_count() == count
        decisions = [e for e in await service.store.events_for_call(call.call_sid) if e.kind == "decision"]
        assert decisions


async def test_delete_at_twilio_once_archived_and_on_erasure(env: Env) -> None:
    async for service in running(env, recordings_delete_at_twilio=True):
        kept = await service.twilio.call(ACME_NUMBER, "+14155550999", ["1"])
        await archived(service, kept)
        assert kept.recording_sid in env.api.recordings
        deps = fetcher_of(service.app).deps  # type: ignore[union-attr]
        report = await reconcile(deps, env.settings(recordings_delete_at_twilio=True), 900)
        assert report.deleted_at_twilio == 1 and kept.recording_sid not in env.api.recordings
        [deleted] = await deletions(service.store)
        assert (deleted["where"], deleted["reason"]) == ("twilio", "archived")
        again = await reconcile(deps, env.settings(recordings_delete_at_twilio=True), 900)
        assert again.deleted_at_twilio == 0 and len(await deletions(service.store)) == 1
        call = await service.twilio.call(ACME_NUMBER, CALLER, ["1"])
        await archived(service, call)
    erase_env = env.cli_env() | {"IVR_RECORDINGS_DELETE_AT_TWILIO": "1"}
    result = ivr(erase_env, "forget", "--phone", CALLER)
    assert result.returncode == 0, result.stderr
    assert "Deleted 1 archived recording(s) and 1 at Twilio" in result.stdout
    assert call.recording_sid not in env.api.recordings and "delete them in Twilio too" not in result.stdout
    assert ACCOUNT in env.api.accounts
    verify(env)


async def test_delete_at_twilio_without_credentials_is_refused(env: Env) -> None:
    async for _service in running(env):
        pass
    cli_env = {k: v for k, v in env.cli_env().items() if k != "TWILIO_ACCOUNT_SID"}
    result = ivr(cli_env | {"IVR_RECORDINGS_DELETE_AT_TWILIO": "1"}, "recordings", "purge")
    assert result.returncode == 2 and "IVR_RECORDINGS_DELETE_AT_TWILIO=1 needs" in result.stderr
    bad = ivr(env.cli_env() | {"IVR_RECORDINGS_DELETE_AT_TWILIO": "yes"}, "recordings", "purge")
    assert bad.returncode == 2 and "must be 1 (on) or 0 (off)" in bad.stderr


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_holds_retention_gaps_and_deletions_read_the_same_on_both_backends(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from consent_store import Business, ConsentDecision, RecordingStatus, open_store, text_sha256
    from consent_store.events import RecordingArchived, RecordingCheck, RecordingDeleted
    from consent_store.recording_gaps import calls_to_reconcile, recording_gaps
    from consent_store.recording_holds import (
        archived_audio,
        legal_holds,
        record_recording_check,
        record_recording_deleted,
        recording_retention,
    )

    url = (
        request.getfixturevalue("pg_migrated_url")
        if backend == "postgresql"
        else f"sqlite:///{tmp_path / 'x.db'}"
    )
    calls = [f"CA{n:032x}" for n in range(1, 5)]
    async with open_store(url) as store:
        await store.add_business(
            Business(ACME, ("+15550001111",), ("updates",), ("en-US",)), {"en-US": "hi"}, "t"
        )
        for n, call in enumerate(calls):
            phone = f"+1415556{n:04d}"
            await store.record_decision(
                ConsentDecision(
                    call, phone, ACME, "opt_in", ("updates",), "1", "en-US", 1, text_sha256("hi"), "hi"
                )
            )
        sid = "RE" + "a" * 32
        await store.attach_recording(RecordingStatus(calls[0], sid, "completed", None, 3))
        await store.record_archived(
            RecordingArchived(calls[0], sid, "b" * 64, 10, "audio/x-wav", 3, "file:///x", "callback")
        )
        await store.attach_recording(
            RecordingStatus(calls[1], "RE" + "c" * 32, "absent", None, 0, error_code="16101")
        )
        await record_recording_check(store, RecordingCheck(calls[2], "none", None, None))
        await record_recording_deleted(
            store, RecordingDeleted(calls[0], sid, "b" * 64, "archive", "purge", "t")
        )
        await set_recording_retention(store, ACME, 3, "t")
        await change_legal_hold(store, held=True, author="t", reason="r", phone="+14155560003")
        await change_legal_hold(store, held=True, author="t", reason="r", business=ACME)
        await change_legal_hold(store, held=False, author="t", reason="r", business=ACME)

        future = "2999-01-01T00:00:00.000000Z"
        to_ask = await calls_to_reconcile(store, future, "2000-01-01T00:00:00.000000Z")
        assert [c.call_sid for c in to_ask] == [calls[2], calls[3]]
        gaps = {g.call_sid: g for g in await recording_gaps(store, future, (ACME,))}
        assert set(gaps) == {calls[1], calls[2], calls[3]}
        assert gaps[calls[1]].reports[0].error_code == "16101" and gaps[calls[2]].check == "none"
        assert await recording_gaps(store, future, ("Other",)) == []
        [audio] = await archived_audio(store)
        assert audio.deleted_from_archive and not audio.deleted_at_twilio and audio.business == ACME
        holds = await legal_holds(store)
        assert holds.businesses == frozenset() and len(holds.subjects) == 1
        assert await recording_retention(store) == {ACME: 3}
        assert await store.deleted_recordings() == {sid: "purge"}
        assert (await store.verify()).intact
