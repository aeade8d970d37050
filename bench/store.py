"""Consent store benchmark: durable decisions/s, group commit against one commit per event, verify.

Run `python -m bench store --help` for the options; bench/README.md explains the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from bench.fill import fill_store
from bench.machine import machine_line
from bench.options import add_count, add_seed_and_dir
from bench.workload import BUSINESSES, Workload, add_businesses
from consent_store import ConsentDecision, SQLiteStore, canonical_json, event_hash

TARGET_DECISIONS_AT_50 = 20_000
TARGET_GROUP_RATIO = 10.0
TARGET_VERIFY = 300_000
REFERENCE_WRITERS = 50
BASELINE_BATCH = 50


class BenchError(Exception):
    """The store gave a wrong result: the figures would mean nothing."""


@dataclass(frozen=True)
class Run:
    """One timed run of `writers` concurrent tasks recording `events` decisions."""

    writers: int
    events: int
    seconds: float
    commits: int | None
    latencies: tuple[float, ...]

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def mean_batch(self) -> float | None:
        return self.events / self.commits if self.commits else None

    def latency_ms(self, quantile: float) -> float:
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]


def _levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from exc
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("concurrency levels must be positive integers")
    return levels


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench store",
        description="Durable decisions/s through SQLiteStore (group commit vs one commit per event), "
        "verify() events/s, and the raw SQLite commit rate of the disk, in one run.",
    )
    add_count(parser, "--events", 20_000, "decisions per concurrency level")
    add_count(
        parser,
        "--per-event-events",
        3_000,
        "at most this many decisions for the one-commit-per-event runs",
        metavar="N",
    )
    add_count(
        parser, "--verify-events", 1_000_000, "events in the store whose verify() is timed", metavar="N"
    )
    parser.add_argument(
        "--levels",
        type=_levels,
        default=[1, 10, 50, 200],
        help="concurrent writers, comma-separated (default 1,10,50,200)",
    )
    parser.add_argument("--skip-verify", action="store_true", help="skip the verify benchmark")
    add_seed_and_dir(parser, "databases")
    return parser.parse_args(list(argv))


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _default_max_batch() -> int:
    return int(inspect.signature(SQLiteStore).parameters["max_batch"].default)


def print_machine(directory: Path) -> None:
    print("consent store benchmark")
    print(machine_line())
    print(
        f"software: Python {platform.python_version()} ({platform.python_implementation()}), "
        f"SQLite {sqlite3.sqlite_version}, aiosqlite {aiosqlite.__version__}"
    )
    print(f"disk:     temporary databases under {directory} (real files: WAL, synchronous=FULL)")
    print()


# -- the raw SQLite baseline ----------------------------------------------------


def _sample_row(workload: Workload) -> tuple[str, str, str]:
    """(key, body, hash) of a decision event as the writer would store it."""
    event = workload.decision().to_event()
    body = canonical_json(
        {
            "seq": 123_456,
            "recorded_at": "2025-01-01T00:00:00.000000Z",
            "kind": event.kind,
            "key": event.idempotency_key,
            "call_sid": event.call_sid,
            "business": event.business,
            "subject": "f" * 64,
            "data": dict(event.fields),
        }
    )
    return event.idempotency_key, body, event_hash("0" * 64, body)


def run_baseline(directory: Path, single_rows: int, batched_rows: int, workload: Workload) -> None:
    """Plain sqlite3: one INSERT per commit, then BASELINE_BATCH INSERTs per commit."""
    key, body, digest = _sample_row(workload)
    row_bytes = len(key) + len(body.encode()) + 2 * len(digest) + 8
    path = directory / "baseline.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(
            "CREATE TABLE rows (seq INTEGER PRIMARY KEY, key TEXT NOT NULL, body TEXT NOT NULL,"
            " prev_hash TEXT NOT NULL, hash TEXT NOT NULL)"
        )
        sql = "INSERT INTO rows (key, body, prev_hash, hash) VALUES (?, ?, ?, ?)"
        started = time.perf_counter()
        for i in range(single_rows):
            conn.execute(sql, (f"{key}:{i}", body, digest, digest))  # autocommit: one commit each
        single = time.perf_counter() - started
        started = time.perf_counter()
        batches = max(1, batched_rows // BASELINE_BATCH)
        for b in range(batches):
            conn.execute("BEGIN")
            conn.executemany(sql, [(f"{key}:b{b}:{i}", body, digest, digest) for i in range(BASELINE_BATCH)])
            conn.execute("COMMIT")
        batched = time.perf_counter() - started
    finally:
        conn.close()
    rows = batches * BASELINE_BATCH
    print(f"baseline: raw sqlite3, WAL + synchronous=FULL, plain INSERT of a ~{row_bytes}-byte row, no index")
    print(
        f"  one row per commit     {single_rows:>9,} rows in {single:6.2f} s"
        f"  {_n(single_rows / single):>9} commits/s"
    )
    print(
        f"  {BASELINE_BATCH} rows per commit    {rows:>9,} rows in {batched:6.2f} s"
        f"  {_n(rows / batched):>9} rows/s ({_n(batches / batched)} commits/s)"
    )
    print()


# -- decisions through the store API ----------------------------------------------


async def run_level(path: Path, decisions: Sequence[ConsentDecision], writers: int, max_batch: int) -> Run:
    """`writers` tasks record the decisions, each awaiting its own before taking the next."""
    store = SQLiteStore(path, max_batch=max_batch)
    await store.open()
    try:
        await add_businesses(store)
        writer = getattr(store, "_writer", None)
        commits_before = getattr(writer, "commits", None)
        pending = iter(decisions)
        latencies: list[float] = []

        async def task() -> None:
            for decision in pending:  # shared iterator: the tasks take turns
                started = time.perf_counter()
                stored = await store.record_decision(decision)
                latencies.append(time.perf_counter() - started)
                if stored.duplicate:
                    raise BenchError(f"{decision.call_sid} was reported as a duplicate")

        started = time.perf_counter()
        await asyncio.gather(*(task() for _ in range(min(writers, len(decisions)))))
        seconds = time.perf_counter() - started
        commits_after = getattr(writer, "commits", None)
        commits = (
            commits_after - commits_before
            if isinstance(commits_before, int) and isinstance(commits_after, int)
            else None
        )
        result = await store.verify()
        expected = len(BUSINESSES) + len(decisions)
        if not result.intact or result.count != expected:
            raise BenchError(
                f"{path.name}: verify found {result.count} events (expected {expected}): {result.problem}"
            )
    finally:
        await store.close()
    return Run(writers, len(decisions), seconds, commits, tuple(latencies))


def _remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".chainhead"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def run_levels(directory: Path, args: argparse.Namespace) -> dict[int, tuple[Run, Run]]:
    group_batch = _default_max_batch()
    per_event_events = min(args.events, args.per_event_events)
    print("durable decisions/s: SQLiteStore.record_decision, N concurrent asyncio tasks, each awaiting")
    print("its own decision's COMMIT; a fresh database file per run")
    print(f"  group commit:           default max_batch={group_batch}, {args.events:,} decisions per level")
    print(
        f"  one commit per event:   max_batch=1, {per_event_events:,} decisions per level"
        + (" (fewer, to keep the time down)" if per_event_events < args.events else "")
    )
    print()
    print(
        f"{'writers':>7} | {'group commit/s':>14} {'events/commit':>13} {'p50 ms':>7} {'p99 ms':>7}"
        f" | {'per-event/s':>11} {'p50 ms':>7} | {'group/per-event':>15}"
    )
    print("-" * 98)
    results: dict[int, tuple[Run, Run]] = {}
    for writers in args.levels:
        runs = []
        for mode, max_batch, count in (("group", group_batch, args.events), ("single", 1, per_event_events)):
            workload = Workload(seed=args.seed * 1000 + writers)
            decisions = workload.decisions(count)
            path = directory / f"store-{writers}-{mode}.db"
            runs.append(asyncio.run(run_level(path, decisions, writers, max_batch)))
            _remove_database(path)
        group, single = runs
        results[writers] = (group, single)
        batch = f"{group.mean_batch:.1f}" if group.mean_batch is not None else "?"
        print(
            f"{writers:>7} | {_n(group.rate):>14} {batch:>13} {group.latency_ms(0.5):>7.2f}"
            f" {group.latency_ms(0.99):>7.2f} | {_n(single.rate):>11} {single.latency_ms(0.5):>7.2f}"
            f" | {group.rate / single.rate:>14.1f}x",
            flush=True,
        )
    print()
    return results


# -- verify ------------------------------------------------------------------------


async def _time_verify(path: Path) -> tuple[float, int, str, str | None]:
    async with SQLiteStore(path) as store:
        started = time.perf_counter()
        result = await store.verify()
        seconds = time.perf_counter() - started
    return (
        seconds,
        result.count,
        result.head,
        result.problem or ("; ".join(result.warnings) if result.warnings else None),
    )


def run_verify(directory: Path, events: int, seed: int) -> float:
    path = directory / "verify.db"
    print(f"verify: SQLiteStore.verify() over {events:,} events (businesses, then decisions)")
    print(
        "  filled by bench.fill.fill_store (direct sqlite3, the writer's exact rows, checkpoints, head file)"
    )
    filled = fill_store(path, events, seed=seed)
    size = sum(p.stat().st_size for p in directory.glob(path.name + "*"))
    print(
        f"  fill    {filled.events:>11,} events in {filled.seconds:6.2f} s"
        f"  {_n(filled.events / filled.seconds):>9} events/s"
        f"  ({filled.checkpoints:,} checkpoints, {filled.subjects:,} subjects, {size / 1e6:,.0f} MB)",
        flush=True,
    )
    seconds, count, head, problem = asyncio.run(_time_verify(path))
    _remove_database(path)
    if problem is not None or count != filled.events or head != filled.head_hash:
        raise BenchError(f"verify of the filled store: count {count}, head {head[:12]}: {problem}")
    rate = count / seconds
    print(
        f"  verify  {count:>11,} events in {seconds:6.2f} s  {_n(rate):>9} events/s"
        f"  (intact, head {head[:16]}...)"
    )
    print()
    return rate


# -- summary -----------------------------------------------------------------------


def print_targets(levels: dict[int, tuple[Run, Run]], verify_rate: float | None) -> None:
    def line(label: str, value: str, met: bool | None) -> None:
        verdict = "" if met is None else ("met" if met else "NOT met")
        print(f"  {label:<58} {value:>10}   {verdict}".rstrip())

    print("targets:")
    reference = levels.get(REFERENCE_WRITERS)
    decisions_label = f">= {_n(TARGET_DECISIONS_AT_50)} durable decisions/s at {REFERENCE_WRITERS} writers"
    ratio_label = (
        f"group commit >= {TARGET_GROUP_RATIO:.0f}x one-commit-per-event at {REFERENCE_WRITERS} writers"
    )
    if reference is None:
        line(decisions_label, "-", None)
        line(ratio_label, "-", None)
        print(f"  (not measured: add {REFERENCE_WRITERS} to --levels)")
    else:
        group, single = reference
        ratio = group.rate / single.rate
        line(decisions_label, _n(group.rate), group.rate >= TARGET_DECISIONS_AT_50)
        line(ratio_label, f"{ratio:.1f}x", ratio >= TARGET_GROUP_RATIO)
    verify_label = f"verify >= {_n(TARGET_VERIFY)} events/s"
    if verify_rate is None:
        line(verify_label, "skipped", None)
    else:
        line(verify_label, _n(verify_rate), verify_rate >= TARGET_VERIFY)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-store-", dir=args.dir) as name:
        directory = Path(name)
        print_machine(directory)
        try:
            run_baseline(
                directory,
                min(args.events, args.per_event_events),
                args.events,
                Workload(seed=args.seed),
            )
            levels = run_levels(directory, args)
            verify_rate = None if args.skip_verify else run_verify(directory, args.verify_events, args.seed)
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print_targets(levels, verify_rate)
    print(f"\ntotal time: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
