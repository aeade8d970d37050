"""Reconciliation: a recording whose callback never came is found through Twilio's Recordings list
(our REST emulator, over real HTTP) by `ivr recordings sync` and by `ivr serve`'s loop, attached
and archived as found by reconciliation, once; /audit/incomplete says why the others are missing."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from consent_store import ConsentStore
from ivr.app import create_app
from ivr.businesses import add_business
from ivr.recordings import sync
from ivr.recordings.exceptions import TwilioApiError
from ivr.recordings.fetch import fetcher_of
from ivr.recordings.twilio_media import TwilioCredentials
from ivr.recordings.twilio_recordings import list_call_recordings
from ivr.settings import Settings
from ivr.twilio.emulator import CallResult, TwilioEmulator
from ivr.twilio.rest_emulator import TwilioRestEmulator, add_recording, recording_media
from tests.cli_runner import ivr_with_env as ivr  # in-process; tests/live_server.py's ivr as was
from tests.conftest import ACME, ACME_NUMBER, AUTH_TOKEN, CALLER
from tests.test_manage_http import PASSWORD, sign_in
from tests.user_hashes import quick_hash

ACCOUNT = "AC" + "7" * 32
OTHER = "Other Co"
OTHER_NUMBER = "+15550002222"


@dataclass
class Env:
    tmp_path: Path
    api: TwilioRestEmulator
    api_url: str

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.tmp_path / 'ivr.db'}"

    @property
    def archive_root(self) -> Path:
        return self.tmp_path / "archive"

    def settings(self, **changes: object) -> Settings:
        base = Settings(
            database_url=self.db_url,
            twilio_auth_token=AUTH_TOKEN,
            twilio_account_sid=ACCOUNT,
            twilio_api_url=self.api_url,
            webhook_retry_seconds=0.05,
            recordings_url=self.archive_root.as_uri(),
            recordings_sync_seconds=0,
        )
        return Settings(**{**base.__dict__, **changes})  # type: ignore[arg-type]

    def cli_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "TWILIO_"))}
        return env | {
            "IVR_DATABASE_URL": self.db_url,
            "TWILIO_ACCOUNT_SID": ACCOUNT,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "IVR_TWILIO_API_URL": self.api_url,
            "IVR_RECORDINGS_URL": self.archive_root.as_uri(),
        }


@dataclass
class Running:
    store: ConsentStore
    twilio: TwilioEmulator
    client: httpx.AsyncClient
    app: object


@contextlib.contextmanager
def emulated(tmp_path: Path) -> Iterator[Env]:
    """Twilio's REST API (our emulator, over real HTTP) for one account, and where things go."""
    api = TwilioRestEmulator()
    api.add_account(ACCOUNT, AUTH_TOKEN)
    with api.serve() as url:
        yield Env(tmp_path, api, url)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with emulated(tmp_path) as found:
        yield found


@pytest.fixture
def zero_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ask about decisions at once (the serve loop's default is 15 minutes after the decision)."""
    monkeypatch.setattr(sync, "DEFAULT_OLDER_THAN_SECONDS", 0)


async def running(env: Env, **changes: object) -> AsyncIterator[Running]:
    app = create_app(env.settings(**changes))
    async with app.router.lifespan_context(app):
        store = app.state.runtime.store
        if not await store.list_businesses():
            await add_business(store, ACME, [ACME_NUMBER], ["delivery updates"])
            await add_business(store, OTHER, [OTHER_NUMBER], ["offers"])
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            twilio = TwilioEmulator(client, "http://testserver", AUTH_TOKEN, ACCOUNT)
            twilio.rest = env.api
            yield Running(store, twilio, client, app)


async def call_without_callback(env: Env, service: Running, to: str = ACME_NUMBER) -> CallResult:
    """An opt-in whose recording exists at Twilio but whose callback never came."""
    call = await service.twilio.call(to, CALLER, ["1"], recording="none")
    assert call.recording_sid is not None
    add_recording(env.api, ACCOUNT, call.call_sid, sid=call.recording_sid, duration=31)
    return call


async def test_a_recording_whose_callback_never_came_is_found_by_sync_and_archived(env: Env) -> None:
    async for service in running(env):
        call = await call_without_callback(env, service)
        assert await service.store.archived_recording(call.call_sid) is None
    result = ivr(env.cli_env(), "recordings", "sync", "--older-than", "0")
    assert result.returncode == 0, result.stderr
    assert "1 recording(s) found and attached, 1 archived" in result.stdout
    async for service in running(env):
        archived = await service.store.archived_recording(call.call_sid)
        assert archived is not None and archived.found_by == "reconciliation"
        body = recording_media(call.recording_sid or "", 31)
        assert archived.sha256 == hashlib.sha256(body).hexdigest()
        assert Path(archived.location).read_bytes() == body
        [recording] = [e for e in await service.store.events_for_call(call.call_sid) if e.kind == "recording"]
        assert '"found_by":"reconciliation"' in recording.body.replace(" ", "")
        count = await service.store.event_count()
    # Idempotent: asking again chains nothing new and Twilio is not asked about an archived call.
    asked = len(env.api.requests)
    again = ivr(env.cli_env(), "recordings", "sync", "--older-than", "0")
    assert again.returncode == 0, again.stderr
    assert "Asked Twilio about 0 call(s)" in again.stdout and len(env.api.requests) == asked
    async for service in running(env):
        assert await service.store.event_count() == count
    verified = ivr(env.cli_env(), "verify")
    assert verified.returncode == 0, verified.stderr + verified.stdout


async def test_the_callback_arriving_after_sync_chains_nothing_twice(env: Env) -> None:
    async for service in running(env):
        call = await call_without_callback(env, service)
        report = await sync.reconcile(fetcher_of(service.app).deps, env.settings(), 0)  # type: ignore[arg-type, union-attr]
        assert (report.attached, report.archived) == (1, 1)
        late = await service.twilio.send_recording(call, ACME_NUMBER, CALLER)
        assert late.status_code in (200, 204)
        # The callback wakes the fetcher, and the app is left at that very moment: its shutdown
        # must not hang (RecordingFetcher._sleep once used asyncio.wait_for, which on Python 3.11
        # swallows a cancellation that lands as the wake-up completes).
        kinds = [e.kind for e in await service.store.events_for_call(call.call_sid)]
        assert kinds.count("recording") == 1 and kinds.count("recording_archived") == 1


async def test_a_young_decision_is_not_asked_about(env: Env) -> None:
    async for service in running(env):
        await call_without_callback(env, service)
        report = await sync.reconcile(fetcher_of(service.app).deps, env.settings(), 900)  # type: ignore[arg-type, union-attr]
        assert report.asked == 0 and not any("Recordings.json" in p for _, p in env.api.requests)


async def test_the_serve_loop_finds_and_archives_it_too(env: Env, zero_grace: None) -> None:
    async for service in running(env, recordings_sync_seconds=0.1):
        call = await call_without_callback(env, service)
        for _ in range(200):
            archived = await service.store.archived_recording(call.call_sid)
            if archived is not None:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the serve loop never archived the recording")
        assert archived.found_by == "reconciliation"


async def test_the_serve_loop_is_off_at_zero(env: Env, zero_grace: None) -> None:
    async for service in running(env, recordings_sync_seconds=0):
        call = await call_without_callback(env, service)
        await asyncio.sleep(0.5)
        assert await service.store.archived_recording(call.call_sid) is None
        assert not any("Recordings.json" in p for _, p in env.api.requests)


@pytest.fixture
async def auditor(env: Env) -> AsyncIterator[Running]:
    async for service in running(env):
        await service.store.add_user("aldo", "auditor", quick_hash(PASSWORD), author="test")
        await sign_in(service.client, "aldo")
        yield service


def row_of(page: str, call_sid: str) -> str:
    start = page.index(f'data-call-sid="{call_sid}"')
    return html.unescape(page[start : page.index("</tr>", start)])


async def test_incomplete_names_absent_with_error_code_none_at_twilio_and_fetch_failing_since(
    env: Env, auditor: Running
) -> None:
    absent = await auditor.twilio.call(ACME_NUMBER, CALLER, ["1"], recording="none")
    add_recording(env.api, ACCOUNT, absent.call_sid, status="absent", error_code=13617)
    nothing = await auditor.twilio.call(ACME_NUMBER, "+14155550999", ["1"], recording="none")
    callback_absent = await auditor.twilio.call(ACME_NUMBER, "+14155550888", ["1"], recording="absent")
    report = await sync.reconcile(fetcher_of(auditor.app).deps, env.settings(), 0)  # type: ignore[arg-type, union-attr]
    # The one whose callback said absent is final already: Twilio is not asked about it.
    assert report.not_found == 2 and report.asked == 2 and report.errors == []
    env.api.media_faults += ["500"] * 1000
    failing = await auditor.twilio.call(ACME_NUMBER, "+14155550777", ["1"])
    fetcher = fetcher_of(auditor.app)
    assert fetcher is not None
    for _ in range(200):
        if fetcher.failures():
            break
        await asyncio.sleep(0.05)
    [failure] = fetcher.failures()
    page = (await auditor.client.get("/audit/incomplete")).text
    assert "absent" in row_of(page, absent.call_sid) and "13617" in row_of(page, absent.call_sid)
    assert "not at Twilio yet" in row_of(page, nothing.call_sid)
    assert "no recording for this call" in row_of(page, nothing.call_sid)
    assert "absent" in row_of(page, callback_absent.call_sid) and "16101" in row_of(
        page, callback_absent.call_sid
    )
    failing_row = row_of(page, failing.call_sid)
    assert "fetch failing" in failing_row and failure.since in failing_row and "500" in failing_row
    env.api.media_faults.clear()
    # Asking again about a call Twilio called absent is useless: it is not asked twice.
    asked = sum("Recordings.json" in p for _, p in env.api.requests)
    await sync.reconcile(fetcher.deps, env.settings(), 0)
    assert sum("Recordings.json" in p for _, p in env.api.requests) == asked + 1  # only "nothing"


async def test_incomplete_shows_only_the_users_businesses(env: Env, auditor: Running) -> None:
    await auditor.store.add_user("olga", "auditor", quick_hash(PASSWORD), author="test", businesses=(OTHER,))
    mine = await auditor.twilio.call(ACME_NUMBER, CALLER, ["1"], recording="absent")
    theirs = await auditor.twilio.call(OTHER_NUMBER, CALLER, ["1"], recording="absent")
    await sign_in(auditor.client, "olga")
    page = (await auditor.client.get("/audit/incomplete")).text
    assert theirs.call_sid in page and mine.call_sid not in page


@pytest.mark.parametrize("fault", ["500", "timeout"])
async def test_twilio_failing_is_one_line_exit_1_and_nothing_is_chained(
    env: Env, fault: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ivr.twilio.rest_emulator.LIST_TIMEOUT_SECONDS", 2.0)
    async for service in running(env):
        call = await call_without_callback(env, service)
        count = await service.store.event_count()
    env.api.recordings_faults.append(fault)
    cli_env = env.cli_env()
    if fault == "timeout":
        monkeypatch.setattr(sync, "TIMEOUT", httpx.Timeout(0.5))
        report_error = None
        async for service in running(env):
            deps = fetcher_of(service.app).deps  # type: ignore[union-attr]
            async with httpx.AsyncClient(timeout=httpx.Timeout(0.5)) as client:
                deps = type(deps)(deps.store, deps.archive, client, deps.credentials)
                report = await sync.reconcile(deps, env.settings(), 0)
            report_error = report.errors[0]
            assert await service.store.event_count() == count
        assert report_error is not None and "no answer" in report_error
        return
    result = ivr(cli_env, "recordings", "sync", "--older-than", "0")
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "500" in result.stderr
    async for service in running(env):
        assert await service.store.event_count() == count
        assert await service.store.archived_recording(call.call_sid) is None


async def test_wrong_credentials_stop_the_pass_with_one_line(env: Env) -> None:
    async for service in running(env):
        await call_without_callback(env, service)
    result = ivr(
        env.cli_env() | {"TWILIO_AUTH_TOKEN": "wrong-token-0123456789abcdef"},
        "recordings",
        "sync",
        "--older-than",
        "0",
    )
    assert result.returncode == 1 and "401" in result.stderr and len(result.stderr.strip().splitlines()) == 1


async def test_sync_without_credentials_is_refused(env: Env) -> None:
    async for _service in running(env):
        pass
    cli_env = {k: v for k, v in env.cli_env().items() if k != "TWILIO_ACCOUNT_SID"}
    result = ivr(cli_env, "recordings", "sync")
    assert result.returncode == 2 and "TWILIO_ACCOUNT_SID" in result.stderr


@pytest.mark.parametrize("value", ["-1", "soon", "1e9"])
async def test_bad_older_than_is_refused(env: Env, value: str) -> None:
    result = ivr(env.cli_env(), "recordings", "sync", "--older-than", value)
    assert result.returncode == 2 and result.stderr.strip()


async def test_the_list_is_followed_across_pages_and_never_to_another_host(env: Env) -> None:
    call_sid = "CA" + "3" * 32
    sids = {add_recording(env.api, ACCOUNT, call_sid)["sid"] for _ in range(5)}
    add_recording(env.api, ACCOUNT, "CA" + "4" * 32)
    credentials = TwilioCredentials(env.api_url, ACCOUNT, ACCOUNT, AUTH_TOKEN)
    async with httpx.AsyncClient() as client:
        found = await list_call_recordings(client, credentials, call_sid, page_size=2)
        assert {r.sid for r in found} == sids
        pages = [p for m, p in env.api.requests if p.endswith("Recordings.json")]
        assert len(pages) == 3
        with pytest.raises(ValueError):
            await list_call_recordings(client, credentials, "CA../../etc/passwd")
        elsewhere = TwilioCredentials("http://127.0.0.2:1", ACCOUNT, ACCOUNT, AUTH_TOKEN)
        with pytest.raises(TwilioApiError):
            await list_call_recordings(client, elsewhere, call_sid)


def test_the_receipt_says_in_words_what_reconciliation_found_and_deleted() -> None:
    from ivr.evidence.event_text import describe_event

    found = {"recording_sid": "RE1", "status": "completed", "duration": 31, "found_by": "reconciliation"}
    assert describe_event("recording", found) == "Recording RE1: completed, 31 s, found by asking Twilio."
    absent = {"outcome": "absent", "recording_sid": "RE2", "error_code": "13617"}
    assert describe_event("recording_check", absent) == (
        "Asked Twilio's Recordings list: the recording absent (ErrorCode 13617)."
    )
    assert describe_event("recording_check", {"outcome": "none"}).endswith("no recording of this call.")
    deleted = {"recording_sid": "RE3", "where": "archive", "reason": "purge"}
    assert "deleted from the archive (the retention period)" in describe_event("recording_deleted", deleted)
