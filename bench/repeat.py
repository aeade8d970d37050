"""`python -m bench repeat`: run the concurrency tests N times and count failures per test.

A flaky test fails one run in eight or twenty; one such failure in CI refuses the whole
submission. This runs a named set of tests (by default CONCURRENCY: concurrent appends,
several writer processes, the catalog watcher's race, SIGKILL under load) `--rounds`
times, each round a fresh `pytest` process (as CI runs it, on `--workers` xdist workers),
and prints each test that failed at least once with how often and its first error line.
Optional `--load K` keeps K busy processes spinning meanwhile, to make the machine as slow
as a loaded CI runner. Exits 1 when any test failed in any round, 0 when all passed.

    python -m bench repeat --rounds 20
    python -m bench repeat --rounds 10 tests/test_catalog.py
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

# Tests whose outcome depends on how concurrent work interleaves: the set to repeat.
CONCURRENCY: tuple[str, ...] = (
    "tests/test_postgres_append.py",
    "tests/test_postgres_processes.py",
    "tests/test_store_concurrency.py",
    "tests/test_store_multiwriter.py",
    "tests/test_store_read_after_write.py",
    "tests/test_catalog.py",
    "tests/test_crash.py",
    "tests/test_export_atomic.py",
)
SETS: dict[str, tuple[str, ...]] = {"concurrency": CONCURRENCY}


@dataclass(frozen=True)
class Outcome:
    """One test in one round: its id, whether it failed, and the first line of why."""

    test: str
    failed: bool
    why: str


@dataclass(frozen=True)
class Round:
    """One pytest run: its exit code, seconds and every test's outcome."""

    number: int
    exit_code: int
    seconds: float
    outcomes: tuple[Outcome, ...]


def read_junit(path: Path) -> tuple[Outcome, ...]:
    """Every test case of a JUnit XML report (`classname::name`), failed when it holds a failure
    or an error element."""
    found = []
    for case in ET.parse(path).getroot().iter("testcase"):
        test = f"{case.get('classname', '')}::{case.get('name', '')}"
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        why = ""
        if bad is not None:
            text = (bad.get("message") or bad.text or "").strip()
            why = text.splitlines()[0][:200] if text else bad.tag
        found.append(Outcome(test, bad is not None, why))
    return tuple(found)


def run_round(number: int, tests: Sequence[str], workers: int, directory: Path) -> Round:
    report = directory / f"round-{number}.xml"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-n",
        str(workers),
        f"--junitxml={report}",
        *tests,
    ]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    outcomes = read_junit(report) if report.exists() else ()
    if done.returncode != 0 and not any(o.failed for o in outcomes):
        # pytest failed without a failing test: a usage or collection error, an interruption, no tests
        tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["no output"]
        outcomes += (Outcome(f"<pytest exit {done.returncode}>", True, tail[0][:200]),)
    return Round(number, done.returncode, seconds, outcomes)


def _spin() -> None:
    while True:
        pass


@contextlib.contextmanager
def busy(processes: int) -> Iterator[None]:
    """`processes` busy loops for the duration, killed on the way out."""
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(processes)]
    for spinner in spinners:
        spinner.start()
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.join()


def summary(rounds: Sequence[Round]) -> tuple[list[str], bool]:
    """The report's lines, and whether every test passed in every round."""
    failures: Counter[str] = Counter()
    runs: Counter[str] = Counter()
    first_why: dict[str, str] = {}
    for one in rounds:
        for outcome in one.outcomes:
            runs[outcome.test] += 1
            if outcome.failed:
                failures[outcome.test] += 1
                first_why.setdefault(outcome.test, f"round {one.number}: {outcome.why}")
    seconds = [one.seconds for one in rounds]
    lines = [
        f"{len(rounds)} rounds of {len(runs)} tests, {min(seconds):.1f}-{max(seconds):.1f} s a round;"
        f" {sum(failures.values())} failure(s) in {len(failures)} test(s)"
    ]
    for test, count in failures.most_common():
        lines.append(f"  {count}/{runs[test]}  {test}")
        lines.append(f"         first: {first_why[test]}")
    return lines, not failures


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench repeat", description=__doc__.split("\n")[0])
    parser.add_argument("tests", nargs="*", help="test files or node ids (default: the --set)")
    parser.add_argument("--set", choices=sorted(SETS), default="concurrency", help="named set of tests")
    parser.add_argument("--rounds", type=int, default=20, help="how many pytest runs (default 20)")
    parser.add_argument("--workers", type=int, default=4, help="xdist workers a run (default 4, as CI)")
    parser.add_argument("--load", type=int, default=0, help="busy processes spinning meanwhile (default 0)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.workers < 0 or args.load < 0:
        parser.error("--rounds must be at least 1, --workers and --load at least 0")
    tests = args.tests or list(SETS[args.set])
    rounds = []
    with tempfile.TemporaryDirectory(prefix="ivr-repeat-") as tmp, busy(args.load):
        for number in range(1, args.rounds + 1):
            one = run_round(number, tests, args.workers, Path(tmp))
            bad = sum(o.failed for o in one.outcomes)
            print(
                f"round {number}/{args.rounds}: {len(one.outcomes)} tests, {bad} failed, {one.seconds:.1f} s",
                flush=True,
            )
            rounds.append(one)
    lines, clean = summary(rounds)
    print("\n".join(lines))
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
