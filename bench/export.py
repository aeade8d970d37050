"""Export benchmark: `ivr export` rows/s and peak RSS per format over a million decisions.

`python -m bench export` fills a store with `bench.fill.fill_store` (1,000,000 decisions,
then a 'completed' recording event for each call, chained like the writer's), then runs,
each as its own process: a baseline (plain sqlite3 reading the decisions' columns and
bodies, csv.writer writing them: no joins, no formatting), `ivr export -o FILE` in each
format and `ivr verify --export FILE` of each. It prints, per command: wall time (start-up
included) and rows/s, CPU seconds (user + system; steadier than wall time on a busy
machine), the process's own peak RSS (VmHWM) and the file size; then the targets.
`--store DB` exports an existing database instead, `--store-cache DB` fills DB on the
first run and exports it on later ones; `--help` lists the options. CPU seconds include
any process the command started (the CSV export's second reader); peak RSS is the
command's own process.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.export_store import append_recordings, describe_store
from bench.fill import fill_store
from bench.machine import cpu_model
from bench.options import add_count, add_seed_and_dir
from bench.workload import BUSINESSES

TARGET_CSV_ROWS_PER_S = 200_000
TARGET_PEAK_RSS_MB = 150
FORMATS = ("csv", "jsonl", "receipts")


class BenchError(Exception):
    """An export gave a wrong result: the figures would mean nothing."""


@dataclass(frozen=True)
class Run:
    label: str
    rows: int
    measured: Measured
    size_mb: float

    @property
    def rate(self) -> float:
        return self.rows / self.measured.seconds


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench export",
        description="rows/s and peak RSS of `ivr export` in each format over a filled store, "
        "with a raw sqlite3 + csv.writer baseline, in one run.",
    )
    add_count(parser, "--decisions", 1_000_000, "decisions in the store")
    parser.add_argument(
        "--no-recordings",
        action="store_true",
        help="leave out the recording event of each call (by default every decision has one)",
    )
    parser.add_argument(
        "--formats", default=",".join(FORMATS), help=f"comma-separated (default {','.join(FORMATS)})"
    )
    parser.add_argument("--skip-verify", action="store_true", help="do not time `ivr verify --export`")
    add_seed_and_dir(parser, "files")
    parser.add_argument(
        "--store", type=Path, help="export this existing SQLite database instead of filling a new one"
    )
    parser.add_argument(
        "--store-cache",
        type=Path,
        metavar="DB",
        help="fill DB once, as the default run would (about 30 s for a million), and export it on "
        "later runs: it must then hold --decisions decisions",
    )
    parser.add_argument("--baseline-child", nargs=2, metavar=("DB", "OUT"), help=argparse.SUPPRESS)
    return parser.parse_args(list(argv))


def _n(value: float) -> str:
    return f"{value:,.0f}"


def baseline_child(db: str, out: str) -> None:
    """The floor: raw sqlite3 reading the decisions' columns and csv.writer writing them, no joins."""
    conn = sqlite3.connect(db)
    cursor = conn.execute(
        "SELECT recorded_at, business, action, call_sid, body, hash FROM events"
        " WHERE kind = 'decision' ORDER BY seq"
    )
    with open(out, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        while rows := cursor.fetchmany(2000):
            writer.writerows(rows)
    conn.close()


# Runs `python -m MODULE ARGS` and reports the process's own peak RSS (VmHWM, from /proc)
# on standard error at exit. (getrusage's ru_maxrss of a child also counts the parent's
# memory at fork, so it is no use here.)
_MEASURED = """
import atexit, runpy, sys

def report():
    with open("/proc/self/status") as status:
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    sys.stderr.write(f"peak-rss-kb {peak}\\n")

atexit.register(report)
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


@dataclass(frozen=True)
class Measured:
    seconds: float  # wall time, start-up included
    cpu_seconds: float  # user + system
    peak_rss_mb: float


def timed_child(module: str, args: Sequence[str], env: dict[str, str]) -> Measured:
    """Run `python -m module args` to its end, raising on failure."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", _MEASURED, module, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    errors = process.stderr.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stderr.close()
    peak = re.search(r"peak-rss-kb (\d+)", errors)
    if process.returncode != 0 or peak is None:
        raise BenchError(f"{module} {' '.join(args)} exited {process.returncode}: {errors.strip()}")
    return Measured(seconds, usage.ru_utime + usage.ru_stime, int(peak.group(1)) / 1024)


def _count_rows(path: Path, fmt: str) -> int:
    with path.open("rb") as handle:
        lines = sum(1 for _ in handle)
    return lines - 1 if fmt == "csv" else lines


def run_exports(
    directory: Path, db: Path, decisions: int, formats: Sequence[str], verify: bool
) -> dict[str, Run]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVR_")}
    env["IVR_DATABASE_URL"] = f"sqlite:///{db}"
    runs: dict[str, Run] = {}
    out = directory / "baseline.csv"
    measured = timed_child("bench.export", ["--baseline-child", str(db), str(out)], env)
    runs["baseline"] = Run(
        "baseline: sqlite3 SELECT + csv.writer", decisions, measured, out.stat().st_size / 1e6
    )
    out.unlink()
    for fmt in formats:
        out = directory / f"export.{fmt}"
        measured = timed_child("ivr", ["export", "--format", fmt, "-q", "-o", str(out)], env)
        rows = _count_rows(out, fmt)
        if rows != decisions:
            raise BenchError(f"ivr export --format {fmt} wrote {rows} rows, expected {decisions}")
        runs[fmt] = Run(f"ivr export --format {fmt}", rows, measured, out.stat().st_size / 1e6)
        if verify:
            measured = timed_child("ivr", ["verify", "-q", "--export", str(out)], env)
            runs[f"verify-{fmt}"] = Run(f"ivr verify --export (of {fmt})", rows, measured, 0.0)
        out.unlink()
        out.with_name(out.name + ".manifest.json").unlink(missing_ok=True)
    return runs


def print_runs(runs: dict[str, Run]) -> None:
    columns = f"{'rows':>9} {'wall s':>7} {'rows/s':>9} {'CPU s':>6}"
    print(f"{'command':<40} | {columns} | {'peak RSS':>8} | {'file':>7}")
    print("-" * 101)
    for run in runs.values():
        size = f"{run.size_mb:,.0f} MB" if run.size_mb else ""
        print(
            f"{run.label:<40} | {run.rows:>9,} {run.measured.seconds:>7.2f} {_n(run.rate):>9}"
            f" {run.measured.cpu_seconds:>6.2f} | {run.measured.peak_rss_mb:>5.0f} MB | {size:>7}"
        )
    print()


def print_targets(runs: dict[str, Run]) -> None:
    print("targets (wall time of the whole command, start-up included):")
    csv_run = runs.get("csv")
    if csv_run is None:
        print("  (csv not measured)")
        return
    rate_ok = csv_run.rate >= TARGET_CSV_ROWS_PER_S
    verdict = "met" if rate_ok else "NOT met"
    print(f"  CSV >= {_n(TARGET_CSV_ROWS_PER_S)} rows/s {_n(csv_run.rate):>32}   {verdict}")
    exports = [r for name, r in runs.items() if name in FORMATS]
    worst = max(r.measured.peak_rss_mb for r in exports)
    rss_ok = worst < TARGET_PEAK_RSS_MB
    verdict = "met" if rss_ok else "NOT met"
    print(f"  peak RSS < {TARGET_PEAK_RSS_MB} MB, every format {worst:>26.0f} MB   {verdict}")


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    if args.baseline_child:
        baseline_child(*args.baseline_child)
        return 0
    formats = [f for f in args.formats.split(",") if f]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        print(f"unknown format(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-export-", dir=args.dir) as name:
        directory = Path(name)
        cores = os.cpu_count()
        print("export benchmark")
        print(f"machine:  {cores} cores, {cpu_model()}, {platform.platform()}")
        print(f"software: Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}")
        print(f"files:    under {directory}")
        print()
        if args.store is not None:
            db = args.store
        elif args.store_cache is not None and args.store_cache.exists():
            db = args.store_cache
        else:
            db = args.store_cache or directory / "export.db"
            fill_store(db, args.decisions + len(BUSINESSES), seed=args.seed)
            if not args.no_recordings:
                append_recordings(db, args.seed)
        decisions, recordings, phones = describe_store(db)
        if args.store_cache is not None and decisions != args.decisions:
            print(f"{db} holds {decisions:,} decisions, not {args.decisions:,}: remove it", file=sys.stderr)
            return 2
        print(
            f"store: {db}: {decisions:,} decisions, {recordings:,} recordings, {phones:,} phones,"
            f" {db.stat().st_size / 1e6:,.0f} MB (ready in {time.perf_counter() - started:.1f} s)"
        )
        print()
        try:
            runs = run_exports(directory, db, decisions, formats, not args.skip_verify)
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print_runs(runs)
    print_targets(runs)
    print(f"\ntotal time: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
