"""The recording archive: whole files named by their hash, exports that carry the hash, and
`ivr verify` that re-hashes every archived recording and names the ones that changed or went."""

# ruff: noqa: F811  (the fixtures imported from test_recording_fetch are parameters here)
from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import os
from pathlib import Path

import pytest

from consent_store import ConsentStore, ExportFilter, RecordingStatus
from consent_store.events import RecordingArchived, RecordingDeleted
from ivr.recordings.archive import LocalArchive, open_archive, recordings_url
from ivr.recordings.exceptions import RecordingMissing
from ivr.settings import Settings
from ivr.twilio.rest_emulator import recording_media
from tests.cli_runner import ivr_with_env as ivr  # in-process; tests/live_server.py's ivr as was
from tests.conftest import ACME_NUMBER
from tests.test_postgres_contract import decision, store  # noqa: F401  (the two-backend fixture)
from tests.test_recording_fetch import (  # noqa: F401  (fixtures)
    Archiving,
    api,
    archive_files,
    archived_sha256,
    archiving,
)

pytest_plugins = ["tests.pg_server"]


async def archived_calls(archiving: Archiving, count: int) -> list[tuple[str, str, str]]:
    """`count` opt-in calls, archived: (CallSid, RecordingSid, sha256) each."""
    found = []
    for n in range(count):  # a caller already opted in is offered the opt-out key instead
        call = await archiving.twilio.call(ACME_NUMBER, f"+1415555{n:04d}", ["1"])
        assert call.recording_sid is not None
        found.append(
            (call.call_sid, call.recording_sid, await archived_sha256(archiving.store, call.call_sid))
        )
    return found


def run_ivr(archiving: Archiving, *args: str) -> tuple[int, str, str]:
    db = str(archiving.store.path)  # type: ignore[union-attr]
    env = dict(
        os.environ, IVR_DATABASE_URL=f"sqlite:///{db}", IVR_RECORDINGS_URL=archiving.archive_root.as_uri()
    )
    done = ivr(env, *args)
    return done.returncode, done.stdout, done.stderr


async def test_verify_rehashes_every_archived_recording(archiving: Archiving) -> None:
    await archived_calls(archiving, 2)
    code, out, err = await asyncio.to_thread(run_ivr, archiving, "verify")
    assert code == 0, err
    assert "chain intact" in out and "2 archived recordings re-hashed, all match" in out


async def test_a_changed_byte_fails_verify_naming_the_recording(archiving: Archiving) -> None:
    [(call_sid, recording_sid, sha256), _] = await archived_calls(archiving, 2)
    path = archiving.archive_root / sha256[:2] / sha256[2:4] / f"{sha256}.wav"
    data = bytearray(path.read_bytes())
    data[1000] ^= 1
    path.write_bytes(bytes(data))
    code, out, err = await asyncio.to_thread(run_ivr, archiving, "verify")
    assert code == 1
    assert f"recording {recording_sid} of call {call_sid}" in err and "bytes changed" in err
    assert hashlib.sha256(bytes(data)).hexdigest() in err and sha256 in err
    assert "1 of 2 archived recordings do not match the chain" in err
    # --skip-recordings checks the chain alone, which is intact.
    code, out, err = await asyncio.to_thread(run_ivr, archiving, "verify", "--skip-recordings")
    assert code == 0 and "re-hashed" not in out


async def test_a_missing_file_fails_verify(archiving: Archiving) -> None:
    [(call_sid, recording_sid, sha256)] = await archived_calls(archiving, 1)
    (archiving.archive_root / sha256[:2] / sha256[2:4] / f"{sha256}.wav").unlink()
    code, out, err = await asyncio.to_thread(run_ivr, archiving, "verify")
    assert code == 1
    assert f"recording {recording_sid} of call {call_sid}" in err and "missing from the archive" in err


async def test_a_recording_deleted_on_purpose_is_not_missing(archiving: Archiving) -> None:
    [(call_sid, recording_sid, sha256), _] = await archived_calls(archiving, 2)
    assert await LocalArchive(archiving.archive_root).delete(sha256)
    await archiving.store._append(  # R2's erasure and purge chain this event
        RecordingDeleted(call_sid, recording_sid, sha256, "archive", "erasure", "alice").to_event()
    )
    code, out, err = await asyncio.to_thread(run_ivr, archiving, "verify")
    assert code == 0, err
    assert "1 archived recording re-hashed, all match, 1 deleted on purpose" in out


async def test_exports_carry_the_sha256_of_the_archived_audio(archiving: Archiving) -> None:
    calls = await archived_calls(archiving, 2)
    unarchived = await archiving.twilio.call(ACME_NUMBER, "+14155559999", ["2"], recording="none")
    expected = {call_sid: sha256 for call_sid, _, sha256 in calls} | {unarchived.call_sid: ""}
    code, out, err = await asyncio.to_thread(run_ivr, archiving, "export", "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0])[-1] == "recording_sha256"
    assert {r["call_sid"]: r["recording_sha256"] for r in rows} == expected
    for call_sid, recording_sid, sha256 in calls:
        [row] = [r for r in rows if r["call_sid"] == call_sid]
        assert (row["recording_sid"], row["recording_duration"]) == (recording_sid, "31")
        assert sha256 == hashlib.sha256(recording_media(recording_sid, 31)).hexdigest()
    code, out, err = await asyncio.to_thread(run_ivr, archiving, "export", "--format", "jsonl")
    assert {
        json.loads(line)["call_sid"]: json.loads(line)["recording_sha256"] for line in out.splitlines()
    } == {k: v or None for k, v in expected.items()}
    code, out, err = await asyncio.to_thread(run_ivr, archiving, "export", "--format", "receipts")
    receipts = [json.loads(line) for line in out.splitlines()]
    assert {r["evidence"]["call_sid"]: r["evidence"]["recording"]["sha256"] for r in receipts} == {
        k: v or None for k, v in expected.items()
    }


async def test_an_export_with_archived_recordings_proves_against_the_store(
    archiving: Archiving, tmp_path: Path
) -> None:
    await archived_calls(archiving, 3)
    out_file = tmp_path / "export.csv"
    code, _, err = await asyncio.to_thread(run_ivr, archiving, "export", "-o", str(out_file))
    assert code == 0, err
    code, out, err = await asyncio.to_thread(run_ivr, archiving, "verify", "--export", str(out_file))
    assert code == 0, err
    assert "matches the store: 3 rows" in out


# -- the local archive itself ----------------------------------------------------------------


async def test_local_archive_writes_whole_files_once_and_refuses_names_that_are_not_hashes(
    tmp_path: Path,
) -> None:
    archive = LocalArchive(tmp_path / "a")
    data = b"RIFF" + bytes(100)
    sha256 = hashlib.sha256(data).hexdigest()
    assert await archive.size(sha256) is None
    with pytest.raises(RecordingMissing):
        await archive.get(sha256)
    await archive.put(data, sha256)
    await archive.put(data, sha256)  # idempotent
    assert await archive.get(sha256) == data and await archive.size(sha256) == len(data)
    assert [p.name for p in archive_files(tmp_path / "a")] == [f"{sha256}.wav"]  # no .incoming-* left
    for hostile in ("../../etc/passwd", sha256.upper(), sha256[:-1], sha256 + "0", "", "a" * 63 + "/"):
        with pytest.raises(ValueError, match="is not a SHA-256"):
            await archive.put(data, hostile)
        with pytest.raises(ValueError):
            archive.path_of(hostile)
    assert await archive.delete(sha256) is True
    assert await archive.delete(sha256) is False


def test_the_default_archive_is_a_folder_beside_the_sqlite_database(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'ivr.db'}")
    assert recordings_url(settings) == (tmp_path / "ivr.db.recordings").as_uri()
    assert isinstance(open_archive(settings), LocalArchive)
    assert not (tmp_path / "ivr.db.recordings").exists()  # made by the first recording only


@pytest.mark.parametrize(
    "value",
    ["http://example.com/x", "file://relative/path", "s3:///no-bucket", "ftp://x", "/plain/path", "s3://"],
)
def test_a_bad_recordings_url_stops_the_start_with_one_line(value: str) -> None:
    with pytest.raises(ValueError, match="IVR_RECORDINGS_URL"):
        Settings.from_env({"IVR_RECORDINGS_URL": value})


def test_a_recordings_url_naming_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is not a folder"):
        open_archive(Settings(recordings_url=(tmp_path / "f").as_uri()))


async def test_the_receipt_page_shows_the_archived_sha256_or_that_it_is_not_archived_yet(
    archiving: Archiving,
) -> None:
    from tests.test_manage_http import PASSWORD, sign_in
    from tests.user_hashes import quick_hash

    [(call_sid, _, sha256)] = await archived_calls(archiving, 1)
    archiving.api.media_faults += ["500"] * 10_000
    waiting = await archiving.twilio.call(ACME_NUMBER, "+14155558888", ["1"])
    await archiving.store.add_user("aldo", "auditor", quick_hash(PASSWORD), author="test")
    client = archiving.twilio.client
    await sign_in(client, "aldo")
    page = await client.get("/audit/receipt", params={"call_sid": call_sid})
    assert page.status_code == 200
    assert f'Recording SHA-256</dt><dd><code class="hash">{sha256}</code>' in page.text
    page = await client.get("/audit/receipt", params={"call_sid": waiting.call_sid})
    assert 'Recording SHA-256</dt><dd><strong class="warning">not archived yet</strong>' in page.text


# -- the store's side, on both backends -----------------------------------------------------------


async def test_the_store_derives_what_to_fetch_and_reads_what_was_archived(store: ConsentStore) -> None:
    await store.record_decision(decision(1))
    call_sid = decision(1).call_sid
    recording_sid, other = "RE" + "a" * 32, "RE" + "b" * 32
    await store.attach_recording(RecordingStatus(call_sid, recording_sid, "completed", "https://r/1", 31))
    await store.attach_recording(RecordingStatus("CA" + "9" * 32, other, "absent", None, None))
    [todo] = await store.recordings_to_fetch()
    assert (todo.call_sid, todo.recording_sid, todo.url, todo.duration) == (
        call_sid,
        recording_sid,
        "https://r/1",
        31,
    )
    assert await store.recordings_to_fetch(after_seq=todo.seq) == []
    [row] = [r async for r in store.export_decisions(ExportFilter())]
    assert (row.recording_sid, row.recording_sha256) == (recording_sid, None)
    archived = RecordingArchived(
        call_sid, recording_sid, "c" * 64, 1044, "audio/x-wav", 31, "/a/c.wav", "callback", "https://r/1"
    )
    first = await store.record_archived(archived)
    again = await store.record_archived(archived)
    assert again.duplicate and again.seq == first.seq
    assert await store.recordings_to_fetch() == [] and await store.archived_count() == 1
    found = await store.archived_recording(call_sid)
    assert found is not None and (found.sha256, found.bytes, found.duration, found.found_by) == (
        "c" * 64,
        1044,
        31,
        "callback",
    )
    assert await store.archived_recording("CA" + "9" * 32) is None
    [row] = [r async for r in store.export_decisions(ExportFilter())]
    assert (row.recording_sid, row.recording_url, row.recording_duration, row.recording_sha256) == (
        recording_sid,
        "https://r/1",
        31,
        "c" * 64,
    )
    assert await store.deleted_recordings() == {}
    await store._append(
        RecordingDeleted(call_sid, recording_sid, "c" * 64, "archive", "purge", "ops").to_event()
    )
    await store._append(
        RecordingDeleted(call_sid, recording_sid, "c" * 64, "twilio", "archived", "ops").to_event()
    )
    assert await store.deleted_recordings() == {recording_sid: "purge"}
    assert (await store.verify()).intact
