"""Scale-out benchmark: durable decisions/s through the store API, 1 vs 3 processes, PostgreSQL beside SQLite.

Each process is a separate Python process with its own store (pool and writer)
and `--tasks` concurrent tasks recording decisions for `--seconds`; the figure
is committed decisions per second summed over the processes. The chain is
verified after every run. Without `--url` a throw-away PostgreSQL server is
started from the distribution's packages (fsync on) and removed afterwards.
Run `python -m bench postgres --help`; never touches a database it did not create.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from multiprocessing.queues import Queue
from pathlib import Path

from bench.workload import opt_in_decision
from consent_store import Business, ConsentDecision, open_store

ACME = Business("Acme Parcels", ("+15550001111",), ("delivery updates",), ("en-US",))
SPOKEN = "Acme Parcels would like to send you delivery updates over WhatsApp. Press 1 to opt in. " * 3


def _decision(process: int, n: int) -> ConsentDecision:
    phone = f"+1415{(process * 7_000_000 + n) % 10_000_000:07d}"
    return opt_in_decision(ACME, f"CA{process:04d}{n:028d}", phone, SPOKEN)


async def _append_for(url: str, process: int, start_at: float, seconds: float, tasks: int) -> int:
    async with open_store(url) as store:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        end = time.monotonic() + seconds
        counter = iter(range(10**9))
        done = 0

        async def task() -> None:
            nonlocal done
            while time.monotonic() < end:
                await store.record_decision(_decision(process, next(counter)))
                if time.monotonic() <= end:
                    done += 1

        await asyncio.gather(*(task() for _ in range(tasks)))
        return done


def _worker(url: str, process: int, start_at: float, seconds: float, tasks: int, out: Queue[int]) -> None:
    out.put(asyncio.run(_append_for(url, process, start_at, seconds, tasks)))


async def _prepare(url: str) -> None:
    async with open_store(url) as store:
        await store.add_business(ACME, {"en-US": SPOKEN}, "bench")


async def _verified_count(url: str) -> int:
    async with open_store(url) as store:
        result = await store.verify()
    if not result.intact:
        raise SystemExit(f"bench: the chain on {url.split('@')[-1]} does not verify: {result.problem}")
    return result.count


def measure(url: str, processes: int, seconds: float, tasks: int) -> float:
    """Committed decisions per second over `processes` processes appending to `url` at once."""
    asyncio.run(_prepare(url))
    context = multiprocessing.get_context("spawn")
    out: Queue[int] = context.Queue()
    start_at = time.time() + 2.0 + 0.5 * processes  # every process open and waiting before the start
    workers = [
        context.Process(target=_worker, args=(url, i, start_at, seconds, tasks, out))
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    counts = [out.get(timeout=seconds + 120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    stored = asyncio.run(_verified_count(url)) - 1  # less the business event
    if stored < sum(counts):
        raise SystemExit(f"bench: {sum(counts)} decisions confirmed but {stored} stored")
    return sum(counts) / seconds


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench postgres", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each timed run (default 10)")
    parser.add_argument("--tasks", type=int, default=50, help="concurrent tasks per process (default 50)")
    parser.add_argument("--processes", default="1,3", help="process counts to compare (default 1,3)")
    parser.add_argument(
        "--url",
        help="an existing PostgreSQL server's maintenance database URL (its user must be allowed to "
        "CREATE DATABASE); default: start a throw-away local server",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    counts = [int(p) for p in args.processes.split(",")]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.pg_server import LocalPostgres, run_sync

    machine = platform.processor() or platform.machine()
    print(f"machine: {os.cpu_count()} cores, {machine}, Python {platform.python_version()}")
    print(f"{args.tasks} tasks per process, {args.seconds:g} s per run, durable commits (fsync on)")
    # Other work on the machine shares its cores: say how busy it was, before and after.
    print(f"load average at start: {_load()}\n")
    local = None if args.url else LocalPostgres(durable=True).start()
    try:
        results: list[tuple[str, int, float]] = []
        with tempfile.TemporaryDirectory(prefix="ivr-bench-") as tmp:
            for processes in counts:
                url = f"sqlite:///{Path(tmp) / f'bench{processes}.db'}"
                results.append(
                    (
                        "SQLite (WAL, synchronous=FULL)",
                        processes,
                        measure(url, processes, args.seconds, args.tasks),
                    )
                )
            for processes in counts:
                if local is not None:
                    url = local.create_database("ivr_bench")
                else:
                    name = f"ivr_bench_{os.getpid()}_{processes}"
                    run_sync(functools.partial(_admin, args.url, f'CREATE DATABASE "{name}"'))
                    url = args.url.rsplit("/", 1)[0] + f"/{name}"
                results.append(
                    ("PostgreSQL (fsync on)", processes, measure(url, processes, args.seconds, args.tasks))
                )
                if local is None:
                    run_sync(functools.partial(_admin, args.url, f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        if local is not None:
            local.stop()
    print(f"| backend | processes | durable decisions/s ({args.tasks} tasks per process) |")
    print("|---|---|---|")
    for backend, processes, rate in results:
        print(f"| {backend} | {processes} | {rate:,.0f} |")
    print(f"\nload average at the end: {_load()}")
    return 0


def _load() -> str:
    """The 1, 5 and 15 minute load averages (runnable processes; this machine has os.cpu_count() cores)."""
    return " / ".join(f"{load:.2f}" for load in os.getloadavg())


async def _admin(url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
