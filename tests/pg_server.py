"""A throw-away PostgreSQL server from the distribution's packages, for tests and benchmarks.

`LocalPostgres` runs initdb in a temporary directory (for a throw-away, non-durable
server in /dev/shm when there is room: see memory_folder) as a non-root user
(`postgres` via runuser when we are root), starts it with pg_ctl on a free
local port with its unix socket in that directory, and removes it all on
stop. The pytest fixtures below start one per test session and give each
test a fresh database. Without a server the tests skip, saying why; under
CI (the CI environment variable set) they fail instead. Never touches a
server it did not start.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import asyncpg
import pytest

from consent_store import Business, ConsentStore, open_store
from tests.live_server import free_port
from tests.memory_folder import memory_folder

T = TypeVar("T")


class PostgresUnavailable(Exception):
    """No local PostgreSQL server could be started; the message says why."""


def find_bin_dir() -> Path:
    """The newest /usr/lib/postgresql/*/bin holding initdb and pg_ctl (Debian), or the PATH's."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(Path(d).parent.name or 0))
    for candidate in reversed(dirs):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    raise PostgresUnavailable("initdb/pg_ctl not found (apt-get install postgresql)")


def run_sync(work: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on its own loop in another thread (works inside a running loop)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(work())).result()  # type: ignore[arg-type]


class LocalPostgres:
    """One private PostgreSQL cluster: trust authentication, 127.0.0.1 only, deleted on stop."""

    def __init__(self, durable: bool = True) -> None:
        self.durable = durable
        self.port = 0
        self.root: Path | None = None
        self._bin = Path()
        self._prefix: list[str] = []
        self._names = itertools.count(1)

    @property
    def data(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    def _run(self, *args: str, timeout: float = 120) -> None:
        command = [*self._prefix, *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            log = self.root / "server.log" if self.root else None
            tail = log.read_text()[-1500:] if log and log.exists() else ""
            raise PostgresUnavailable(f"{Path(args[0]).name} failed: {done.stderr.strip()[-800:]} {tail}")

    def start(self) -> LocalPostgres:
        self._bin = find_bin_dir()
        owner = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise PostgresUnavailable(
                    "running as root and there is no 'postgres' user to run it"
                ) from exc
            runuser = shutil.which("runuser")
            if runuser is None:
                raise PostgresUnavailable("running as root and runuser is missing")
            self._prefix = [runuser, "-u", "postgres", "--"]
        self.root = Path(tempfile.mkdtemp(prefix="ivr-pg-", dir=None if self.durable else memory_folder()))
        if owner is not None:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self.port = free_port()
        self._run(
            str(self._bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200"
            f" -c fsync={'on' if self.durable else 'off'} -c shared_buffers=128MB"
        )
        self._run(
            str(self._bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        return self

    def stop(self) -> None:
        if self.root is None:
            return
        with contextlib.suppress(PostgresUnavailable, subprocess.TimeoutExpired):
            self._run(
                str(self._bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60
            )
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    async def admin(self, *statements: str) -> None:
        """Run statements as the superuser on the maintenance database."""
        conn = await asyncpg.connect(self.url())
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    def create_database(self, prefix: str = "ivr_test") -> str:
        """A new empty database; its URL."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        run_sync(lambda: self.admin(f'CREATE DATABASE "{name}"'))
        return self.url(name)

    def clone_database(self, template: str, prefix: str = "ivr_test") -> str:
        """A new database copied from `template` (CREATE DATABASE ... TEMPLATE: a file copy, much
        quicker than running the store's migrations again); its URL."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        run_sync(lambda: self.admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with contextlib.suppress(asyncpg.PostgresError, OSError):
            run_sync(lambda: self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def unavailable(reason: str) -> None:
    """Skip locally, fail under CI: the PostgreSQL tests must run in CI."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the PostgreSQL tests, but no server could be started: {reason}")
    pytest.skip(f"no local PostgreSQL server ({reason}); .ci/run installs and starts one")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[LocalPostgres | str]:
    """The session's PostgreSQL server, or why there is none."""
    server = LocalPostgres(durable=False)
    try:
        server.start()
    except (PostgresUnavailable, OSError, subprocess.TimeoutExpired) as exc:
        server.stop()
        yield str(exc)
        return
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: LocalPostgres | str) -> Iterator[str]:
    """A fresh database on the session's server, dropped afterwards."""
    if isinstance(pg_server, str):
        unavailable(pg_server)
        raise AssertionError("unreachable")
    url = pg_server.create_database()
    try:
        yield url
    finally:
        pg_server.drop_database(url)


@pytest.fixture(scope="session")
def pg_template(pg_server: LocalPostgres | str) -> str:
    """The name of a database this session's code migrated to the current schema (and nothing
    more): the template `pg_migrated_url` copies. No connection stays open on it."""
    if isinstance(pg_server, str):
        unavailable(pg_server)
        raise AssertionError("unreachable")
    from consent_store import open_store

    url = pg_server.create_database("ivr_template")

    async def migrate() -> None:
        async with open_store(url):
            pass

    run_sync(migrate)
    return url.rsplit("/", 1)[1]


@pytest.fixture
def pg_migrated_url(pg_server: LocalPostgres | str, pg_template: str) -> Iterator[str]:
    """A fresh database already at the current schema (a copy of `pg_template`), dropped afterwards.
    For tests of what a store does, not of how it gets its schema: those take `pg_url` (empty)."""
    assert isinstance(pg_server, LocalPostgres)
    url = pg_server.clone_database(pg_template)
    try:
        yield url
    finally:
        pg_server.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store on each backend: a SQLite file in tmp_path, or a PostgreSQL database copied
    from one migrated once (pg_migrated_url). Tests on its "postgresql" case are `slow`."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ivr.db'}"
    return str(request.getfixturevalue("pg_migrated_url"))


ACME_SPOKEN = "Acme Parcels would like to send you delivery updates over WhatsApp. Press 1 to opt in."


@pytest.fixture
async def acme_store(store_url: str) -> AsyncIterator[ConsentStore]:
    """An open store on each backend holding Acme Parcels (+15550001111, delivery updates, en-US)."""
    async with open_store(store_url) as opened:
        await opened.add_business(
            Business("Acme Parcels", ("+15550001111",), ("delivery updates",), ("en-US",)),
            {"en-US": ACME_SPOKEN},
            "t",
        )
        yield opened
