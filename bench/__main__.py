"""`python -m bench NAME [options]` runs a benchmark; `python -m bench` lists them."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# name -> (module with a `main(argv) -> int`, what it measures)
BENCHMARKS: dict[str, tuple[str, str]] = {
    "store": (
        "bench.store",
        "consent store: durable decisions/s (group commit vs one commit per event), "
        "verify events/s, raw SQLite baseline",
    ),
    "export": (
        "bench.export",
        "ivr export: rows/s and peak RSS per format over 1M decisions, raw sqlite3 + csv baseline",
    ),
    "load": (
        "bench.load",
        "whole signed calls against a real `ivr serve`: latency per webhook, calls/s, errors, "
        "server CPU and RSS, vs a bare-Starlette floor; wrk on the voice webhook; --soak-rss N",
    ),
    "postgres": (
        "bench.postgres",
        "scale-out: durable decisions/s through the store, 1 vs 3 processes, PostgreSQL beside SQLite",
    ),
    "stats": (
        "bench.stats",
        "opt-in quality figures for one business over 1M decisions, beside plain GROUP BY baselines",
    ),
    "soak": (
        "bench.soak",
        "minutes of mixed calls (hang-ups, retries, reordered callbacks) against ivr serve, then no loss",
    ),
    "hotspots": (
        "bench.hotspots",
        "each piece of a webhook alone (signature, form, store reads, TwiML, one durable write), "
        "µs per call, with the cheaper alternative beside it",
    ),
    "message_status": (
        "bench.message_status",
        "wrk on POST /twilio/message-status (distinct signed status callbacks) vs the bare-Starlette floor;"
        " every acknowledged status stored",
    ),
    "status_store": (
        "bench.status_store",
        "status callbacks kept through the store: durable statuses/s and CPU per status, SQLite and"
        " PostgreSQL in one run",
    ),
    "messaging": (
        "bench.messaging",
        "wrk on POST /twilio/messaging (incoming WhatsApp messages, some STOP) vs the bare-Starlette floor;"
        " every acknowledged STOP an opt-out",
    ),
    "compliance": (
        "bench.compliance",
        "ivr compliance over 1,000,000 message statuses (filled with SQL) beside the same query in sqlite3",
    ),
    "recordings": (
        "bench.recordings",
        "10,000 recordings archived through the REST emulator (fetch, hash, fsync, chain): recordings/s,"
        " and the recording webhook's p99 while archiving beside a run without it",
    ),
    "repeat": (
        "bench.repeat",
        "not a benchmark: the concurrency tests run --rounds N times (fresh pytest each), failures per test",
    ),
}


def list_benchmarks() -> None:
    print("usage: python -m bench NAME [options]   (python -m bench NAME --help for the options)")
    print()
    print("benchmarks:")
    width = max(len(name) for name in BENCHMARKS)
    for name, (_, about) in BENCHMARKS.items():
        print(f"  {name:<{width}}  {about}")


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] in {"-h", "--help", "list"}:
        list_benchmarks()
        return 0
    name, rest = argv[0], list(argv[1:])
    if name not in BENCHMARKS:
        print(f"unknown benchmark {name!r}", file=sys.stderr)
        list_benchmarks()
        return 2
    module = importlib.import_module(BENCHMARKS[name][0])
    return int(module.main(rest))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
