"""wrk on the voice webhook for `python -m bench load`: one signed request posted over and over.

Checks the request gets a real answer first, then runs wrk with a Lua script whose `done` prints
the figures as one JSON line; the server's CPU is read from /proc around the run.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
from twilio.request_validator import RequestValidator

from bench.load_procs import BenchError, Server, cpu_percent, sample

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


def voice_params(phone: str, to: str) -> dict[str, str]:
    """The form of a voice webhook post: `phone` ringing `to`, with a fixed CallSid."""
    return {
        "AccountSid": "AC" + "0" * 32,
        "ApiVersion": "2010-04-01",
        "CallSid": "CA" + "f" * 32,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "From": phone,
        "To": to,
        "Caller": phone,
        "Called": to,
    }


def voice_request(base_url: str, token: str, to: str) -> tuple[str, str, str]:
    """(url, form body, X-Twilio-Signature) of one voice webhook post with a fixed CallSid."""
    url = f"{base_url}/twilio/voice"
    params = voice_params("+14155550100", to)
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
    child_cpu: float = 0.0  # the server's child processes (the status writer process)

    @property
    def rate(self) -> float:
        return self.figures["requests"] / (self.figures["duration_us"] / 1e6)

    def ms(self, name: str) -> float:
        return self.figures[name] / 1000


def run_wrk(
    server: Server, script: Path, connections: int, seconds: int, check: bool, token: str, to: str
) -> WrkRun:
    url, body, signature = voice_request(server.base_url, token, to)
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
    return wrk_measured(server, script, url, connections, seconds)


def wrk_measured(server: Server, script: Path, url: str, connections: int, seconds: int) -> WrkRun:
    """wrk (one thread, a 5 s timeout) with a Lua script that ends by printing WRK_DONE's
    BENCH-WRK line, against `url` of `server`: its figures, the server's CPU and wrk's own over
    the run. Shared by the voice, status-callback and messaging benchmarks."""
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
        child_cpu=cpu_percent(before, after, children=True),
        wrk_cpu=100 * wrk_cpu / (after.at - before.at),
    )


def add_wrk_options(parser: argparse.ArgumentParser) -> None:
    """--seconds, --connections and --seed, as every wrk benchmark takes them."""
    parser.add_argument("--seconds", type=int, default=15, help="each wrk run (default 15)")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections (default 50)")
    parser.add_argument("--seed", type=int, default=1)


def print_ratio(ours: WrkRun, floor: WrkRun) -> bool:
    """Print ours against the floor (requests/s, p50, p99); True when within 1.5x of its rate."""
    print(
        f"ours / floor: requests/s {ours.rate / floor.rate:.2f}x;"
        f" p50 {ours.ms('p50') / floor.ms('p50'):.2f}x;"
        f" p99 {ours.ms('p99') / floor.ms('p99'):.2f}x"
    )
    return floor.rate / ours.rate <= 1.5


def wrk_missing() -> bool:
    """True (and says how to install it) when wrk is not on the PATH."""
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install -y wrk)")
        return True
    return False
