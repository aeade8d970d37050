"""The processes of `python -m bench load`: servers, the load generator, py-spy, and /proc readings.

Starts a server and waits for /healthz, runs bench/load_client.py in its own process, reads a
process's CPU ticks and memory from /proc/<pid>. Every process started here is stopped here,
whatever happens (SIGTERM, then SIGKILL; the load generator is killed at its time limit).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


class BenchError(Exception):
    """The benchmark could not run (server did not start, wrong answers): the figures would mean nothing."""


# -- processes -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ProcSample:
    """One reading of /proc/<pid>: CPU ticks (all threads, and the main thread) and memory."""

    at: float
    ticks: int
    main_ticks: int
    rss_kb: int
    hwm_kb: int
    threads: int
    child_ticks: int = 0  # its live child processes' (the SQLite store's status writer process)

    @property
    def rss_mb(self) -> float:
        return self.rss_kb / 1024


def _stat_ticks(path: Path) -> int:
    fields = path.read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def live_children_ticks(pid: int) -> int:
    """CPU ticks of the process's live children (/proc/<pid>/stat of each whose parent it is)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile
            continue
        if int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])
    return total


def sample(pid: int) -> ProcSample:
    status = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        status[name] = value.strip()
    return ProcSample(
        at=time.monotonic(),
        ticks=_stat_ticks(Path(f"/proc/{pid}/stat")),
        main_ticks=_stat_ticks(Path(f"/proc/{pid}/task/{pid}/stat")),
        rss_kb=int(status["VmRSS"].split()[0]),
        hwm_kb=int(status["VmHWM"].split()[0]),
        threads=int(status["Threads"]),
        child_ticks=live_children_ticks(pid),
    )


def cpu_percent(
    first: ProcSample, last: ProcSample, main_only: bool = False, children: bool = False
) -> float:
    """CPU over the interval, % of one core: the process's (its main thread's only), or with
    `children` its live child processes' alone."""
    wall = last.at - first.at
    if children:
        ticks = last.child_ticks - first.child_ticks
    else:
        ticks = (last.main_ticks - first.main_ticks) if main_only else (last.ticks - first.ticks)
    return 100 * ticks / CLK_TCK / wall if wall > 0 else 0.0


def loaded_extensions(pid: int) -> str:
    """Which event loop and HTTP parser the server really runs, from its memory map."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return "unknown"
    found = [name for name in ("uvloop", "httptools") if re.search(rf"/{name}/\S*\.so", maps)]
    return ", ".join(found) + " loaded" if found else "neither uvloop nor httptools loaded (asyncio, h11)"


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid


@contextlib.contextmanager
def serve(name: str, command: list[str], env: dict[str, str], log: Path, port: int) -> Iterator[Server]:
    """Start a server process, wait for /healthz, stop it (SIGTERM, then SIGKILL) whatever happens."""
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(name, process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise BenchError(f"{name} exited with {process.returncode}:\n{log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{server.base_url}/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise BenchError(f"{name} never became healthy:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


# -- the load generator process ------------------------------------------------------


@dataclass
class ClientRun:
    result: dict[str, Any]
    measuring: ProcSample
    end: ProcSample
    progress: list[tuple[dict[str, Any], ProcSample]] = field(default_factory=list)

    def webhook(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.result["webhooks"][name]
        return found


def run_client(
    server: Server,
    config: dict[str, Any],
    time_limit: float,
    on_progress: Callable[[dict[str, Any], ProcSample, ProcSample], None] | None = None,
    py_spy: Path | None = None,
) -> ClientRun:
    """Run bench.load_client in its own process; sample the server when it starts measuring and at the end."""
    command = [sys.executable, "-m", "bench.load_client", json.dumps({"base_url": server.base_url, **config})]
    client = subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent
    )
    timer = threading.Timer(time_limit, client.kill)  # bounded whatever happens
    timer.start()
    spy: subprocess.Popen[bytes] | None = None
    measuring: ProcSample | None = None
    end: ProcSample | None = None
    result: dict[str, Any] | None = None
    run_progress: list[tuple[dict[str, Any], ProcSample]] = []
    try:
        assert client.stdout is not None
        for line in client.stdout:
            event = json.loads(line)
            if event["event"] == "measuring":
                measuring = sample(server.pid)
                if py_spy is not None:
                    spy = start_py_spy(server.pid, py_spy)
            elif event["event"] == "progress":
                reading = sample(server.pid)
                if on_progress is not None and measuring is not None:
                    on_progress(event, reading, run_progress[-1][1] if run_progress else measuring)
                run_progress.append((event, reading))
            elif event["event"] == "result":
                end = sample(server.pid)
                result = event
        client.wait(timeout=30)
    finally:
        timer.cancel()
        if client.poll() is None:
            client.kill()
            client.wait()
        if spy is not None:
            stop_py_spy(spy, py_spy)
    if result is None or measuring is None or end is None:
        raise BenchError(f"the load generator ended without a result (exit {client.returncode})")
    return ClientRun(result, measuring, end, run_progress)


def start_py_spy(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    if shutil.which("py-spy") is None:
        print("  (py-spy not found: pip install py-spy; no profile recorded)")
        return None
    fmt = "flamegraph" if out.suffix == ".svg" else "raw"
    command = ["py-spy", "record", "--pid", str(pid), "--rate", "250", "--nonblocking", "--threads"]
    return subprocess.Popen(
        [*command, "--format", fmt, "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def stop_py_spy(spy: subprocess.Popen[bytes], out: Path | None) -> None:
    spy.send_signal(signal.SIGINT)
    try:
        _, err = spy.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.communicate()
        err = b""
    if out is not None and out.exists():
        print(f"  py-spy profile of the server during the measured calls: {out}")
    else:
        print(f"  py-spy wrote no profile: {err.decode(errors='replace')[-400:]}")
