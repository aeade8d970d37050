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
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from twilio.request_validator import RequestValidator

from bench.load_client import WEBHOOKS

BUSINESS = "Bench Bakery"
NUMBER = "+15550199001"
MESSAGE_TYPE = "order updates"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

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


class BenchError(Exception):
    """The benchmark could not run (server did not start, wrong answers): the figures would mean nothing."""


# -- options -----------------------------------------------------------------------


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench load",
        description="Whole signed calls against a real `ivr serve` (latency per webhook, calls/s, errors, "
        "server CPU and RSS), against a bare-Starlette floor, and wrk on the voice webhook, in one run.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--concurrency",
        type=_positive,
        default=TARGET_CONCURRENCY,
        help="calls in progress at once (default 50)",
    )
    mode.add_argument("--rate", type=_positive_float, default=None, help="new calls per second (open loop)")
    parser.add_argument("--calls", type=_positive, default=None, help="measured calls (default 2000)")
    parser.add_argument(
        "--seconds",
        type=_positive_float,
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
        help="load generator: lean asyncio client (default) or ivr.emulator.TwilioEmulator over httpx",
    )
    parser.add_argument(
        "--wrk-seconds", type=_positive, default=10, help="duration of each wrk run (default 10)"
    )
    parser.add_argument(
        "--wrk-connections", type=_positive, default=TARGET_CONCURRENCY, help="wrk connections (default 50)"
    )
    parser.add_argument("--skip-wrk", action="store_true", help="leave out the wrk runs")
    parser.add_argument("--skip-baseline", action="store_true", help="leave out the bare-Starlette floor")
    parser.add_argument(
        "--soak-rss",
        type=_positive,
        default=None,
        metavar="N",
        help="only the RSS soak: N whole calls, the server's RSS every --rss-every calls",
    )
    parser.add_argument(
        "--rss-every", type=_positive, default=10_000, help="soak reading interval (default 10000)"
    )
    parser.add_argument(
        "--soak-seconds", type=_positive_float, default=600, help="time limit of the soak (default 600)"
    )
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
        type=_positive_float,
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

    @property
    def rss_mb(self) -> float:
        return self.rss_kb / 1024


def _stat_ticks(path: Path) -> int:
    fields = path.read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


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
    )


def cpu_percent(first: ProcSample, last: ProcSample, main_only: bool = False) -> float:
    wall = last.at - first.at
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


# -- wrk -----------------------------------------------------------------------------

WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH-WRK {\\"requests\\":%d,\\"duration_us\\":%d,\\"status_errors\\":%d,\\"socket_errors\\":%d,"
    .. "\\"p50\\":%d,\\"p90\\":%d,\\"p99\\":%d,\\"max\\":%d,\\"mean\\":%f}\\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


def voice_request(base_url: str, token: str) -> tuple[str, str, str]:
    """(url, form body, X-Twilio-Signature) of one voice webhook post with a fixed CallSid."""
    url = f"{base_url}/twilio/voice"
    params = {
        "AccountSid": "AC" + "0" * 32,
        "ApiVersion": "2010-04-01",
        "CallSid": "CA" + "f" * 32,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "From": "+14155550100",
        "To": NUMBER,
        "Caller": "+14155550100",
        "Called": NUMBER,
    }
    return url, urlencode(params), RequestValidator(token).compute_signature(url, params)


def write_wrk_script(path: Path, body: str, signature: str) -> None:
    # A form body and a base64 signature hold no quote or backslash: safe in a Lua string.
    path.write_text(
        'wrk.method = "POST"\n'
        f'wrk.body = "{body}"\n'
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
        f'wrk.headers["X-Twilio-Signature"] = "{signature}"\n' + WRK_DONE
    )


@dataclass(frozen=True)
class WrkRun:
    figures: dict[str, float]
    server_cpu: float
    wrk_cpu: float

    @property
    def rate(self) -> float:
        return self.figures["requests"] / (self.figures["duration_us"] / 1e6)

    def ms(self, name: str) -> float:
        return self.figures[name] / 1000


def run_wrk(server: Server, script: Path, connections: int, seconds: int, check: bool, token: str) -> WrkRun:
    url, body, signature = voice_request(server.base_url, token)
    reply = httpx.post(
        url,
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )
    if reply.status_code != 200 or (check and "<Gather" not in reply.text):
        raise BenchError(
            f"the wrk request gets HTTP {reply.status_code} from {server.name}: {reply.text[:200]}"
        )
    write_wrk_script(script, body, signature)
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", str(script), url]
    before, children = sample(server.pid), resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    after, children_after = sample(server.pid), resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH-WRK ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stdout[-500:]} {done.stderr[-500:]}")
    wrk_cpu = (children_after.ru_utime + children_after.ru_stime) - (children.ru_utime + children.ru_stime)
    return WrkRun(
        figures=json.loads(line.split(" ", 1)[1]),
        server_cpu=cpu_percent(before, after),
        wrk_cpu=100 * wrk_cpu / (after.at - before.at),
    )


# -- printing ------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def print_machine(args: argparse.Namespace, directory: Path) -> None:
    import starlette
    import uvicorn

    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    print("load benchmark: whole signed calls against `ivr serve`, and a bare-Starlette floor")
    print(f"machine:  {cores} cores ({usable} usable), {_cpu_model()}, {platform.platform()}")
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


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_calls(title: str, run: ClientRun) -> None:
    result = run.result
    print(title)
    print(
        f"  {'webhook':<10} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}"
        f" {'max ms':>8}"
    )
    for name in WEBHOOKS:
        figures = run.webhook(name)
        print(
            f"  {name:<10} {figures['count']:>8,} {result['errors'].get(name, 0):>6}"
            f" {_ms(figures.get('p50')):>8} {_ms(figures.get('p90')):>8} {_ms(figures.get('p99')):>8}"
            f" {_ms(figures.get('max')):>8}"
        )
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
    print(f"  server CPU {run.server_cpu:.0f}% of one core; wrk CPU {run.wrk_cpu:.0f}%")
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
                f"  whole calls, {label + ' p50':<13} {_ms(a):>7} ms vs {_ms(b):>6} ms = "
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
                f"{_ms(p99)} ms",
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


def add_business(env: dict[str, str]) -> None:
    command = [sys.executable, "-m", "ivr", "business", "add", "--name", BUSINESS, "--number", NUMBER]
    done = subprocess.run(
        [*command, "--message-type", MESSAGE_TYPE],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
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
        code = f"import sys; sys.setswitchinterval({switch_interval!r}); from ivr.cli import main; main()"
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
                server, directory / "voice.lua", args.wrk_connections, args.wrk_seconds, True, token
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
                    server, directory / "voice.lua", args.wrk_connections, args.wrk_seconds, False, token
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
                f" {event['chunk_calls_per_s']:>8,.0f} {_ms(chunk['voice'].get('p99')):>10}"
                f" {_ms(chunk['decision'].get('p99')):>13} {cpu:>10.0f}% {event['errors']:>7}",
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
