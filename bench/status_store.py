"""Status callbacks kept through the store: durable statuses/s on SQLite and PostgreSQL, same run.

`python -m bench status_store [--statuses 10000] [--tasks 50]`

Each backend gets a fresh store; `--tasks` asyncio tasks keep `--statuses` distinct status
callbacks (record_message_status, as the webhook does after its checks), each awaited until
durable. The figures are statuses/s and the CPU per status of this process (the event loop and
the writer thread) and of its child processes (on SQLite, the status writer process, started
by a first status before the clock starts); every status is then counted in the database (exit
1 if one is missing). A throw-away PostgreSQL server is started from the distribution's packages (fsync on).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.load_procs import CLK_TCK, live_children_ticks
from consent_store import open_store
from consent_store.message_statuses import MessageStatusReport, count_message_statuses, record_message_status


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench status_store", description=__doc__)
    parser.add_argument("--statuses", type=int, default=10_000, help="distinct statuses per backend")
    parser.add_argument("--tasks", type=int, default=50, help="concurrent tasks (default 50)")
    return parser.parse_args(list(argv))


def reports(count: int) -> list[MessageStatusReport]:
    return [
        MessageStatusReport(
            f"SM{n:032x}", "sent", f"+1415{n % 10**7:07d}", "+15550001111", "whatsapp", "2026-12-02T10:00:00Z"
        )
        for n in range(count)
    ]


async def measure(url: str, count: int, tasks: int) -> tuple[float, float, float, int]:
    """statuses/s, CPU seconds per status of this process and of its child processes (SQLite's
    status writer process), statuses found afterwards (one more than `count`: the first, kept
    before the clock starts, starts that process)."""
    async with open_store(url) as store:
        queue = reports(count + 1)
        await record_message_status(store, queue.pop())

        async def task() -> None:
            while queue:
                await record_message_status(store, queue.pop())

        began, cpu, children = time.perf_counter(), time.process_time(), live_children_ticks(os.getpid())
        await asyncio.gather(*(task() for _ in range(tasks)))
        wall, cpu = time.perf_counter() - began, time.process_time() - cpu
        children = (live_children_ticks(os.getpid()) - children) / CLK_TCK
        statuses, _ = await count_message_statuses(store)
    return count / wall, cpu / count, children / count, statuses


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.pg_server import LocalPostgres

    print(f"{args.statuses:,} distinct status callbacks, {args.tasks} tasks, durable commits")
    print(f"load average at start: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    rows: list[tuple[str, tuple[float, float, float, int]]] = []
    with tempfile.TemporaryDirectory(prefix="ivr-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'statuses.db'}"
        rows.append(("SQLite (WAL, synchronous=FULL)", asyncio.run(measure(url, args.statuses, args.tasks))))
    server = LocalPostgres(durable=True).start()
    try:
        url = server.create_database("ivr_bench")
        rows.append(("PostgreSQL (fsync on)", asyncio.run(measure(url, args.statuses, args.tasks))))
    finally:
        server.stop()
    print("| backend | statuses/s | CPU per status: this process / its child processes | kept |")
    print("|---|---|---|---|")
    for name, (rate, cpu, children, kept) in rows:
        print(f"| {name} | {rate:,.0f} | {cpu * 1e6:,.0f} / {children * 1e6:,.0f} µs | {kept:,} |")
    lost = [name for name, (_, _, _, kept) in rows if kept != args.statuses + 1]
    if lost:
        print(f"LOST statuses on: {', '.join(lost)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
