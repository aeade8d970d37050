"""What `python -m bench load` prints: the machine, each run's figures, the floor ratios, the targets.

Printing only: never starts a process or changes a figure. The targets (issue 8) live here.
"""

from __future__ import annotations

import argparse
import platform
import shutil
from collections.abc import Sequence
from pathlib import Path

from bench.load_client import WEBHOOKS
from bench.load_procs import ClientRun, cpu_percent
from bench.load_wrk import WrkRun
from bench.machine import machine_line

TARGET_P99_MS = 25.0
TARGET_DECISION_P99_MS = 40.0
TARGET_CALLS_PER_S = 400.0
TARGET_VOICE_RATIO = 1.5
TARGET_CONCURRENCY = 50
TARGET_SOAK_CALLS = 100_000
# A load generator above this share of a core is the bottleneck, not the server.
CLIENT_BOUND_PERCENT = 80.0
# "Flat": from the second RSS reading to the last, at most this much growth.
FLAT_RSS_MB = 5.0
FLAT_RSS_SHARE = 0.05


def print_machine(args: argparse.Namespace, directory: Path) -> None:
    import starlette
    import uvicorn

    print("load benchmark: whole signed calls against `ivr serve`, and a bare-Starlette floor")
    print(machine_line())
    print(
        f"software: Python {platform.python_version()}, uvicorn {uvicorn.__version__}, "
        f"starlette {starlette.__version__}, wrk {'yes' if shutil.which('wrk') else 'not installed'}"
    )
    load = f"{args.rate:g} new calls/s" if args.rate else f"{args.concurrency} concurrent calls"
    if args.soak_rss:
        args = argparse.Namespace(**(vars(args) | {"calls": args.soak_rss, "seconds": args.soak_seconds}))
    limits = " and ".join(
        part
        for part in (
            f"{args.calls:,} calls" if args.calls else "",
            f"{args.seconds:g} s" if args.seconds else "",
        )
        if part
    )
    print(
        f"load:     {load}, {args.client} client, {args.warmup} warm-up calls, then {limits}"
        " (whichever first)"
    )
    print(f"files:    {directory} (SQLite WAL, synchronous=FULL; server logs at INFO as `ivr serve` does)")
    print()


def format_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


# The latencies of the per-webhook table, as the load client names them; a column each, in ms.
LATENCIES = ("p50", "p90", "p99", "max")


def _webhook_line(webhook: str, requests: str, errors: str, latencies: Sequence[str]) -> str:
    """A line of the per-webhook table: the heading and each row, so that they line up."""
    return f"  {webhook:<10} {requests:>8} {errors:>6}" + "".join(f" {ms:>8}" for ms in latencies)


def print_calls(title: str, run: ClientRun) -> None:
    result = run.result
    print(title)
    print(_webhook_line("webhook", "requests", "errors", [f"{latency} ms" for latency in LATENCIES]))
    for name in WEBHOOKS:
        figures = run.webhook(name)
        errors = result["errors"].get(name, 0)
        latencies = [format_ms(figures.get(latency)) for latency in LATENCIES]
        print(_webhook_line(name, f"{figures['count']:,}", str(errors), latencies))
    other = {k: v for k, v in result["errors"].items() if k not in WEBHOOKS}
    print(
        f"  complete calls: {result['calls_ok']:,} of {result['calls']:,} in {result['seconds']:.2f} s"
        f" = {result['calls_per_s']:,.0f} calls/s; failed calls: {result['calls_failed']:,}"
        + (f" {other}" if other else "")
    )
    for example in result["examples"]:
        print(f"    e.g. {example}")
    requests = sum(run.webhook(name)["count"] for name in WEBHOOKS)
    if result["rate"]:
        print(
            f"  open loop: {result['rate']:g} new calls/s offered, {result['calls'] / result['seconds']:,.0f}"
            f" started/s achieved, at most {result['in_flight_peak']:,} calls in flight"
        )
    elif requests:
        # Closed loop without think time: every call is always waiting for its next reply.
        print(
            f"  closed loop: {result['concurrency']} calls in flight / {requests / result['seconds']:,.0f}"
            f" requests/s = {1000 * result['concurrency'] * result['seconds'] / requests:.1f} ms mean"
            " per request (Little's law: the latency is the queue)"
        )
    start, end = run.measuring, run.end
    print(
        f"  server: CPU {cpu_percent(start, end):.0f}% of one core (event-loop thread"
        f" {cpu_percent(start, end, main_only=True):.0f}%, other threads"
        f" {cpu_percent(start, end) - cpu_percent(start, end, main_only=True):.0f}%),"
        f" RSS {start.rss_mb:.1f} -> {end.rss_mb:.1f} MB (peak {end.hwm_kb / 1024:.1f}),"
        f" {end.threads} threads"
    )
    print(
        f"  load generator ({result['client']}): CPU {result['client_cpu_percent']:.0f}% of one core"
        f" ({1e6 * result['client_cpu_seconds'] / max(1, result['calls']):.0f} µs a call)"
    )
    if result["client_cpu_percent"] >= CLIENT_BOUND_PERCENT:
        print(
            "  (the load generator used about a whole core: these figures are bounded by the client,"
            " the server could do more)"
        )
    print()


def print_wrk(title: str, run: WrkRun) -> None:
    f = run.figures
    print(title)
    print(
        f"  {run.rate:,.0f} requests/s; latency p50 {run.ms('p50'):.2f} ms, p90 {run.ms('p90'):.2f}, "
        f"p99 {run.ms('p99'):.2f}, max {run.ms('max'):.2f}, mean {run.ms('mean'):.2f};"
        f" {int(f['requests']):,} requests, non-2xx/3xx {int(f['status_errors'])}, socket errors"
        f" {int(f['socket_errors'])}"
    )
    children = f" (and its child processes {run.child_cpu:.0f}%)" if run.child_cpu >= 0.5 else ""
    print(f"  server CPU {run.server_cpu:.0f}% of one core{children}; wrk CPU {run.wrk_cpu:.0f}%")
    print()


def _ratio(ours: float | None, floor: float | None) -> float | None:
    return ours / floor if ours is not None and floor else None


def print_ratios(
    ours: ClientRun, floor: ClientRun | None, wrk_ours: WrkRun | None, wrk_floor: WrkRun | None
) -> None:
    if floor is None and (wrk_ours is None or wrk_floor is None):
        return
    print("against the floor (bare Starlette, same uvicorn options, same client, same load):")
    if floor is not None:
        for label, name in (("voice", "voice"), ("decision", "decision")):
            a, b = ours.webhook(name).get("p50"), floor.webhook(name).get("p50")
            r = _ratio(a, b)
            print(
                f"  whole calls, {label + ' p50':<13} {format_ms(a):>7} ms vs {format_ms(b):>6} ms = "
                + ("-" if r is None else f"{r:.1f}x")
            )
        r = _ratio(floor.result["calls_per_s"], ours.result["calls_per_s"])
        print(
            f"  whole calls, calls/s       {ours.result['calls_per_s']:>7,.0f}"
            f" vs {floor.result['calls_per_s']:>6,.0f}"
            f"    (floor is {'-' if r is None else f'{r:.1f}x'} faster)"
        )
    if wrk_ours is not None and wrk_floor is not None:
        r = _ratio(wrk_ours.ms("p50"), wrk_floor.ms("p50"))
        print(
            f"  wrk voice, p50             {wrk_ours.ms('p50'):>7.2f} ms vs {wrk_floor.ms('p50'):>6.2f} ms = "
            + ("-" if r is None else f"{r:.1f}x")
        )
        print(
            f"  wrk voice, requests/s      {wrk_ours.rate:>7,.0f} vs {wrk_floor.rate:>6,.0f}"
            f"    = {wrk_ours.rate / wrk_floor.rate:.2f}x of the floor's throughput"
        )
    print()


def print_targets(
    args: argparse.Namespace,
    ours: ClientRun | None,
    floor: ClientRun | None,
    wrk_ours: WrkRun | None,
    wrk_floor: WrkRun | None,
    soak: tuple[int, float, float] | None,
) -> None:
    def line(label: str, value: str, met: bool | None) -> None:
        verdict = "" if met is None else ("met" if met else "NOT met")
        print(f"  {label:<62} {value:>12}   {verdict}".rstrip())

    at_target = not args.rate and args.concurrency == TARGET_CONCURRENCY
    print(f"targets (issue 8; at {TARGET_CONCURRENCY} concurrent calls, one `ivr serve`, SQLite):")
    if ours is not None:
        if not at_target:
            print(f"  (this run is not at {TARGET_CONCURRENCY} concurrent calls: verdicts left out)")
        for name in WEBHOOKS:
            limit = TARGET_DECISION_P99_MS if name == "decision" else TARGET_P99_MS
            p99 = ours.webhook(name).get("p99")
            line(
                f"{name} p99 < {limit:.0f} ms",
                f"{format_ms(p99)} ms",
                (p99 is not None and p99 < limit) if at_target else None,
            )
        rate = ours.result["calls_per_s"]
        line(
            f">= {TARGET_CALLS_PER_S:.0f} complete calls/s",
            f"{rate:,.0f}",
            rate >= TARGET_CALLS_PER_S if at_target else None,
        )
        errors = sum(ours.result["errors"].values())
        line("no errors (non-2xx, wrong TwiML, failed calls)", f"{errors}", errors == 0)
    if ours is None:
        pass  # the soak: no floor
    elif wrk_ours is not None and wrk_floor is not None:
        r = wrk_ours.ms("p50") / wrk_floor.ms("p50")
        line(
            f"voice p50 <= {TARGET_VOICE_RATIO}x floor (wrk, {args.wrk_connections} connections)",
            f"{r:.1f}x",
            r <= TARGET_VOICE_RATIO if args.wrk_connections == TARGET_CONCURRENCY else None,
        )
    elif floor is not None:
        r = ours.webhook("voice")["p50"] / floor.webhook("voice")["p50"]
        line(
            f"voice p50 <= {TARGET_VOICE_RATIO}x floor (whole calls; wrk not run)",
            f"{r:.1f}x",
            r <= TARGET_VOICE_RATIO if at_target else None,
        )
    else:
        line(f"voice p50 <= {TARGET_VOICE_RATIO}x floor", "not run", None)
    if soak is None:
        line(f"flat RSS after {TARGET_SOAK_CALLS:,} calls", "see --soak-rss", None)
    else:
        calls, growth_mb, share = soak
        flat = growth_mb <= FLAT_RSS_MB or share <= FLAT_RSS_SHARE
        line(
            f"flat RSS after {TARGET_SOAK_CALLS:,} calls (this soak: {calls:,})",
            f"{growth_mb:+.1f} MB",
            flat if calls >= TARGET_SOAK_CALLS else None,
        )
