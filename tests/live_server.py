"""A real `ivr serve` process on a free port, for tests about processes, crashes and browsers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

# The manager every `site` (tests/conftest.py) starts with: alice, with this password.
SITE_PASSWORD = "correct horse battery staple"


def ivr(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the `ivr` command in a process of its own with this environment."""
    return subprocess.run(
        [sys.executable, "-m", "ivr", *args],
        env=env,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(env: dict[str, str], log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`ivr serve` on a free port; killed (if still alive) and reaped on the way out, whatever happens."""
    port = free_port()
    with log.open("ab") as out:
        command = [sys.executable, "-m", "ivr", "serve", "--port", str(port)]
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def wait_until_healthy(base: str, process: subprocess.Popen[bytes], log: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, f"server exited with {process.returncode}:\n{log.read_text()[-2000:]}"
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.02)
    raise AssertionError(f"server never became healthy:\n{log.read_text()[-2000:]}")


def add_users(database_url: str, roles: Mapping[str, str], password: str = SITE_PASSWORD) -> None:
    """Add users (name: role, every business) to a store a running `ivr serve` has created, in this
    process: what `ivr user add NAME --role ROLE` does (the same store call), without starting an
    interpreter per user, and with a cheap argon2 hash (tests/user_hashes.py) that the server checks as
    it checks any. The store is another writer beside the server's, as the CLI is."""
    from consent_store import open_store
    from tests.user_hashes import quick_hash

    async def add() -> None:
        async with open_store(database_url) as store:
            for name, role in roles.items():
                await store.add_user(name, role, quick_hash(password), author="cli")  # type: ignore[arg-type]

    with ThreadPoolExecutor(1) as thread:  # a browser's event loop may be running in this thread
        thread.submit(asyncio.run, add()).result()
