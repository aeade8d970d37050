"""`ivr compliance` over 1,000,000 message statuses, filled with SQL, beside the same query in sqlite3.

`python -m bench compliance [--statuses 1000000] [--decisions 200000] [--runs 3]`

1. a store of `--decisions` chained decisions (bench/fill.py, eight businesses, repeat callers);
2. `--statuses` status callbacks of messages sent by Acme Parcels (one business: the check is per
   business, so all of them are its), written straight into `message_statuses` and `messages`
   with sqlite3 (as the webhook would have: each message's first report kept once): 70% to numbers
   with a decision for Acme, 30% to strangers, first reported over the decisions' time span so
   some messages precede the opt-in; most messages go queued, sent, delivered, read;
3. `python -m ivr compliance --business "Acme Parcels" --format json` timed as a whole process
   (start-up, opening the store, the query, the JSON), `--runs` times, with its exit status (1:
   messages listed) and count; beside it `python -m ivr --version` (the start-up alone) and the
   store's query run in-process through sqlite3 (the floor).

Target: `ivr compliance` under 5 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.fill import fill_store
from consent_store.message_statuses import RECIPIENTS_CTE, standing_sql

BUSINESS, NUMBER = "Acme Parcels", "+15550001111"
ISO = "%Y-%m-%dT%H:%M:%S.%fZ"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench compliance", description=__doc__)
    parser.add_argument("--statuses", type=int, default=1_000_000)
    parser.add_argument("--decisions", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", help="where the temporary database goes (default: the system's temp)")
    parser.add_argument("--store", help="fill this database once and reuse it on later runs")
    return parser.parse_args(list(argv))


def fill_statuses(path: Path, count: int, seed: int) -> tuple[int, int]:
    """Write `count` statuses of Acme's messages; return (statuses, messages)."""
    rng = random.Random(seed)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        phones = [
            row[0]
            for row in conn.execute(
                "SELECT DISTINCT s.phone FROM subjects s JOIN events e ON e.subject = s.subject"
                " WHERE e.business = ? AND e.kind = 'decision'",
                (BUSINESS,),
            )
        ]
        low, high = conn.execute("SELECT min(recorded_at), max(recorded_at) FROM events").fetchone()
        start = dt.datetime.strptime(low, ISO)
        span = (dt.datetime.strptime(high, ISO) - start).total_seconds() + 3600
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("BEGIN")
        statuses: list[tuple[object, ...]] = []
        firsts: list[tuple[object, ...]] = []
        written = 0
        while written < count:
            sid = f"SM{rng.getrandbits(128):032x}"
            to = rng.choice(phones) if rng.random() < 0.7 else f"+1415{rng.randrange(10**7):07d}"
            roll = rng.random()
            path_ = (
                [("queued", None), ("failed", 63016)]
                if roll < 0.1
                else [("queued", None), ("sent", None), ("undelivered", 30003)]
                if roll < 0.15
                else [("queued", None), ("sent", None), ("delivered", None), ("read", None)]
            )
            at = start + dt.timedelta(seconds=rng.random() * span)
            for step, (status, code) in enumerate(path_[: count - written]):
                moment = (at + dt.timedelta(seconds=step)).strftime(ISO)
                statuses.append(
                    (sid, status, code, to, NUMBER, "whatsapp", "AC" + "0" * 32, BUSINESS, moment)
                )
                if step == 0:
                    firsts.append((sid, BUSINESS, to, NUMBER, "whatsapp", status, moment))
                written += 1
            if len(statuses) >= 50_000:
                _flush(conn, statuses, firsts)
                statuses, firsts = [], []
        _flush(conn, statuses, firsts)
        conn.execute("COMMIT")
        messages = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    finally:
        conn.close()
    return written, int(messages)


def _flush(
    conn: sqlite3.Connection, statuses: list[tuple[object, ...]], firsts: list[tuple[object, ...]]
) -> None:
    conn.executemany(
        "INSERT INTO message_statuses (message_sid, status, error_code, to_number, from_number, channel,"
        " account_sid, business, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        statuses,
    )
    conn.executemany(
        "INSERT INTO messages (message_sid, business, to_number, from_number, channel, first_status,"
        " first_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        firsts,
    )


def floor_query(path: Path) -> tuple[float, int]:
    """The store's query alone, through sqlite3 in this process: (seconds, rows)."""
    conn = sqlite3.connect(path)
    try:
        started = time.perf_counter()
        rows = conn.execute(
            f"WITH {RECIPIENTS_CTE}, c AS MATERIALIZED (SELECT m.message_sid, {standing_sql(False)}"
            " AS standing_seq FROM messages m LEFT JOIN r ON r.phone = m.to_number WHERE m.business = ?)"
            " SELECT count(*) FROM c LEFT JOIN events e ON e.seq = c.standing_seq"
            " WHERE c.standing_seq IS NULL OR e.action = 'opt_out'",
            (BUSINESS, BUSINESS),
        ).fetchone()[0]
        return time.perf_counter() - started, int(rows)
    finally:
        conn.close()


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """(wall seconds, CPU seconds of the process, what it did): on a shared machine the CPU time
    is what the command costs; the wall time also holds the waits for a core."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, cpu, done


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-compliance-", dir=args.dir) as name:
        path = Path(args.store) if args.store else Path(name) / "ivr.db"
        if not path.exists():
            started = time.perf_counter()
            filled = fill_store(path, args.decisions, seed=args.seed)
            statuses, messages = fill_statuses(path, args.statuses, args.seed)
            print(
                f"store: {filled.events:,} chained events ({filled.subjects:,} phones),"
                f" {statuses:,} statuses of {messages:,} messages from {BUSINESS};"
                f" filled in {time.perf_counter() - started:.1f} s; {path.stat().st_size / 2**20:,.0f} MB"
            )
        else:
            with sqlite3.connect(path) as conn:
                counts = [conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in
                          ("events", "message_statuses", "messages")]  # fmt: skip
            print(f"store {path}: {counts[0]:,} events, {counts[1]:,} statuses of {counts[2]:,} messages")
        env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
        env["IVR_DATABASE_URL"] = f"sqlite:///{path}"
        command = [sys.executable, "-m", "ivr", "compliance", "--business", BUSINESS, "--format", "json"]
        times, cpus, found = [], [], None
        for _ in range(args.runs):
            seconds, cpu, done = timed(command, env)
            if done.returncode not in (0, 1):
                print(f"ivr compliance failed ({done.returncode}): {done.stderr.strip()}")
                return 1
            report = json.loads(done.stdout)
            found = (done.returncode, report["messages_checked"], report["sent_without_consent"])
            times.append(seconds)
            cpus.append(cpu)
        startups = [timed([sys.executable, "-m", "ivr", "--version"], env) for _ in range(3)]
        floor_seconds, floor_rows = floor_query(path)
        assert found is not None
        print(
            f"ivr compliance --format json: median {statistics.median(times):.2f} s wall,"
            f" {statistics.median(cpus):.2f} s CPU, of {args.runs} (wall min {min(times):.2f},"
            f" max {max(times):.2f}); exit {found[0]};"
            f" {found[2]:,} of {found[1]:,} messages sent without consent"
        )
        print(
            "  of which start-up (python -m ivr --version):"
            f" {statistics.median(s[0] for s in startups):.2f} s wall,"
            f" {statistics.median(s[1] for s in startups):.2f} s CPU"
        )
        print(f"floor: the same query in sqlite3, in-process: {floor_seconds:.2f} s, {floor_rows:,} rows")
        print(
            f"target: under 5 s: wall {'met' if statistics.median(times) < 5 else 'NOT met'},"
            f" CPU {'met' if statistics.median(cpus) < 5 else 'NOT met'}"
            f" (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
        )
        if found[2] != floor_rows:
            print(f"WRONG: ivr compliance listed {found[2]:,}, the query finds {floor_rows:,}")
            return 1
    return 0
