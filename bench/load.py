"""Load benchmark of the whole service: real `ivr serve`, whole signed calls, a bare-Starlette floor.

Run `python -m bench load --help` for the options; bench/README.md explains the figures.

Everything runs on loopback, in a temporary directory, bounded in calls and seconds:

1. `python -m ivr business add` on a fresh SQLite file, then `python -m ivr serve` on a free port
   (TWILIO_AUTH_TOKEN set, so the load generator can sign), waited for on /healthz;
2. whole calls (voice -> decision -> recording callback -> status callback) from a separate
   process (bench/load_client.py) at a fixed concurrency or arrival rate, with the server's CPU
   and RSS read from /proc/<pid>/stat and /proc/<pid>/status around the measured part;
3. `wrk` posting one signed voice webhook over and over (the single-webhook figure);
4. the same two measurements against bench/baseline_app.py (same uvicorn options) for the floor.

`--soak-rss N` instead runs N whole calls and prints the server's RSS every 10,000 calls.

This module holds the options, the setup and the two runs; the processes and /proc readings are in
bench/load_procs.py, wrk in bench/load_wrk.py, what is printed (and the targets) in bench/load_report.py.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.load_procs import (
    BenchError,
    ProcSample,
    Server,
    cpu_percent,
    free_port,
    loaded_extensions,
    run_client,
    sample,
    serve,
)
from bench.load_report import (
    TARGET_CONCURRENCY,
    format_ms,
    print_calls,
    print_machine,
    print_ratios,
    print_targets,
    print_wrk,
)
from bench.load_wrk import run_wrk
from bench.options import add_count, positive_float, positive_int

BUSINESS = "Bench Bakery"
NUMBER = "+15550199001"
MESSAGE_TYPE = "order updates"


# -- options -----------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench load",
        description="Whole signed calls against a real `ivr serve` (latency per webhook, calls/s, errors, "
        "server CPU and RSS), against a bare-Starlette floor, and wrk on the voice webhook, in one run.",
    )
    mode = parser.add_mutually_exclusive_group()
    add_count(mode, "--concurrency", TARGET_CONCURRENCY, "calls in progress at once")
    mode.add_argument("--rate", type=positive_float, default=None, help="new calls per second (open loop)")
    parser.add_argument("--calls", type=positive_int, default=None, help="measured calls (default 2000)")
    parser.add_argument(
        "--seconds",
        type=positive_float,
        default=None,
        help="stop starting calls after this long (default 120)",
    )
    parser.add_argument(
        "--warmup", type=int, default=200, help="calls before measuring, not counted (default 200)"
    )
    parser.add_argument(
        "--client",
        choices=("lean", "emulator"),
        default="lean",
        help="load generator: lean asyncio client (default) or ivr.twilio.emulator.TwilioEmulator over httpx",
    )
    add_count(parser, "--wrk-seconds", 10, "duration of each wrk run")
    add_count(parser, "--wrk-connections", TARGET_CONCURRENCY, "wrk connections")
    parser.add_argument("--skip-wrk", action="store_true", help="leave out the wrk runs")
    parser.add_argument("--skip-baseline", action="store_true", help="leave out the bare-Starlette floor")
    parser.add_argument(
        "--soak-rss",
        type=positive_int,
        default=None,
        metavar="N",
        help="only the RSS soak: N whole calls, the server's RSS every --rss-every calls",
    )
    add_count(parser, "--rss-every", 10_000, "soak reading interval")
    add_count(parser, "--soak-seconds", 600, "time limit of the soak", kind=positive_float)
    parser.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        metavar="FILE",
        help="record the server with py-spy during the measured calls: FILE.svg = flame graph, "
        "anything else = collapsed stacks (see bench/profile_report.py)",
    )
    parser.add_argument(
        "--switch-interval",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="experiment: run `ivr serve` with sys.setswitchinterval(SECONDS) (Python's default 0.005)",
    )
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary directory goes")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (server logs, db)")
    args = parser.parse_args(list(argv))
    if args.calls is None and args.seconds is None:
        args.calls, args.seconds = 2000, 120.0
    return args


# -- the parts -----------------------------------------------------------------------


def client_config(args: argparse.Namespace, token: str, *, check: bool, phone_prefix: int) -> dict[str, Any]:
    return {
        "token": token,
        "to": NUMBER,
        "concurrency": args.concurrency,
        "rate": args.rate,
        "calls": args.calls,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "check": check,
        "client": args.client if check else "lean",
        "phone_prefix": phone_prefix,
        "max_in_flight": max(1000, 4 * args.concurrency),
    }


def server_env(directory: Path, token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IVR_", "TWILIO_"))}
    env |= {"IVR_DATABASE_URL": f"sqlite:///{directory / 'ivr.db'}", "TWILIO_AUTH_TOKEN": token}
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_ivr(env: dict[str, str], *args: str, timeout: float | None = 60) -> subprocess.CompletedProcess[str]:
    """`python -m ivr ARGS` with `env` (see server_env), its output captured; the caller reads its exit."""
    command = [sys.executable, "-m", "ivr", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def add_business(env: dict[str, str]) -> None:
    done = run_ivr(
        env, "business", "add", "--name", BUSINESS, "--number", NUMBER, "--message-type", MESSAGE_TYPE
    )
    if done.returncode != 0:
        raise BenchError(f"ivr business add failed: {done.stderr.strip()}")


def ivr_serve(
    directory: Path, env: dict[str, str], switch_interval: float | None = None
) -> contextlib.AbstractContextManager[Server]:
    port = free_port()
    python = [sys.executable, "-m", "ivr"]
    if switch_interval is not None:
        # Same as `python -m ivr`, with the GIL's switch interval changed first.
        code = (
            f"import sys; sys.setswitchinterval({switch_interval!r}); from ivr.cli.main import main; main()"
        )
        python = [sys.executable, "-c", code]
    command = [*python, "serve", "--host", "127.0.0.1", "--port", str(port)]
    return serve("ivr serve", command, env, directory / "ivr-serve.log", port)


def baseline_serve(directory: Path, env: dict[str, str]) -> contextlib.AbstractContextManager[Server]:
    port = free_port()
    command = [sys.executable, "-m", "bench.baseline_app", "--host", "127.0.0.1", "--port", str(port)]
    return serve("baseline", command, env, directory / "baseline.log", port)


def time_limit(args: argparse.Namespace, seconds: float | None) -> float:
    # The client stops starting calls at --seconds; give the warm-up and the last calls time to end.
    return (seconds or 600) + 120 + args.warmup / 10


def run_default(args: argparse.Namespace, directory: Path, env: dict[str, str], token: str) -> None:
    wrk = None if args.skip_wrk else shutil.which("wrk")
    if wrk is None and not args.skip_wrk:
        print("wrk is not installed: the single-webhook runs are left out (apt-get install -y wrk)")
        print()
    ours = floor = None
    wrk_ours = wrk_floor = None
    with ivr_serve(directory, env, args.switch_interval) as server:
        idle = sample(server.pid)
        print(
            f"ivr serve: pid {server.pid}, {loaded_extensions(server.pid)};"
            f" RSS at start {idle.rss_mb:.1f} MB,"
            f" {idle.threads} threads"
        )
        print()
        ours = run_client(
            server,
            client_config(args, token, check=True, phone_prefix=201),
            time_limit(args, args.seconds),
            py_spy=args.py_spy,
        )
        print_calls("whole calls against ivr serve", ours)
        if wrk is not None:
            wrk_ours = run_wrk(
                server, directory / "voice.lua", args.wrk_connections, args.wrk_seconds, True, token, NUMBER
            )
            print_wrk(
                f"wrk: POST /twilio/voice against ivr serve, {args.wrk_connections} connections,"
                f" {args.wrk_seconds} s (one signed request, fixed CallSid)",
                wrk_ours,
            )
        last = sample(server.pid)
        print(f"ivr serve at the end: RSS {last.rss_mb:.1f} MB (peak {last.hwm_kb / 1024:.1f} MB)")
        print()
    if not args.skip_baseline:
        with baseline_serve(directory, env) as server:
            print(f"baseline (bench/baseline_app.py): pid {server.pid}, {loaded_extensions(server.pid)}")
            print()
            floor = run_client(
                server,
                client_config(args, token, check=False, phone_prefix=301),
                time_limit(args, args.seconds),
            )
            print_calls("whole calls against the floor (same requests, replies not checked)", floor)
            if wrk is not None:
                wrk_floor = run_wrk(
                    server,
                    directory / "voice.lua",
                    args.wrk_connections,
                    args.wrk_seconds,
                    False,
                    token,
                    NUMBER,
                )
                print_wrk(
                    f"wrk: POST /twilio/voice against the floor, {args.wrk_connections} connections",
                    wrk_floor,
                )
    print_ratios(ours, floor, wrk_ours, wrk_floor)
    print_targets(args, ours, floor, wrk_ours, wrk_floor, None)


def run_soak(args: argparse.Namespace, directory: Path, env: dict[str, str], token: str) -> None:
    calls = args.soak_rss
    print(
        f"RSS soak: {calls:,} whole calls at "
        + (f"{args.rate:g} calls/s" if args.rate else f"{args.concurrency} concurrent calls")
        + f", at most {args.soak_seconds:g} s; the server's RSS every {args.rss_every:,} calls"
    )
    readings: list[tuple[int, float]] = []
    with ivr_serve(directory, env, args.switch_interval) as server:
        start = sample(server.pid)
        print(
            f"ivr serve: pid {server.pid}, {loaded_extensions(server.pid)};"
            f" RSS at start {start.rss_mb:.1f} MB"
        )
        print()
        print(
            f"  {'calls':>8} {'RSS MB':>8} {'change':>8} {'calls/s':>8} {'voice p99':>10}"
            f" {'decision p99':>13} {'server CPU':>11} {'errors':>7}"
        )

        def progress(event: dict[str, Any], reading: ProcSample, previous: ProcSample) -> None:
            base = readings[0][1] if readings else reading.rss_mb
            readings.append((int(event["calls"]), reading.rss_mb))
            cpu = cpu_percent(previous, reading)
            chunk = event["chunk"]
            print(
                f"  {event['calls']:>8,} {reading.rss_mb:>8.1f} {reading.rss_mb - base:>+8.1f}"
                f" {event['chunk_calls_per_s']:>8,.0f} {format_ms(chunk['voice'].get('p99')):>10}"
                f" {format_ms(chunk['decision'].get('p99')):>13} {cpu:>10.0f}% {event['errors']:>7}",
                flush=True,
            )

        config = client_config(args, token, check=True, phone_prefix=401)
        config |= {"calls": calls, "seconds": args.soak_seconds, "progress_every": args.rss_every}
        run = run_client(server, config, time_limit(args, args.soak_seconds), on_progress=progress)
        end = run.end
        print()
        print_calls(f"whole calls of the soak (all {run.result['calls']:,})", run)
    if len(readings) >= 2:
        reference = readings[1] if len(readings) > 2 else readings[0]
        growth = end.rss_mb - reference[1]
        share = growth / reference[1]
        print(
            f"RSS: {start.rss_mb:.1f} MB at start, {reference[1]:.1f} MB after {reference[0]:,} calls,"
            f" {end.rss_mb:.1f} MB after {run.result['calls']:,} ({growth:+.1f} MB, {100 * share:+.1f}%);"
            f" peak {end.hwm_kb / 1024:.1f} MB"
        )
        print()
        print_targets(args, None, None, None, None, (run.result["calls"], growth, share))
    else:
        print(f"RSS: too few readings for a verdict (fewer than {2 * args.rss_every:,} calls were made)")


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="bench-load-", dir=args.dir))
    try:
        print_machine(args, directory)
        token = secrets.token_hex(16)
        env = server_env(directory, token)
        add_business(env)
        if args.soak_rss:
            run_soak(args, directory, env, token)
        else:
            run_default(args, directory, env, token)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"\nkept {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    print(f"\ntotal time: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
