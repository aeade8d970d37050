"""wrk on POST /twilio/message-status: status callbacks ingested over HTTP, beside the bare-Starlette floor.

`python -m bench message_status [--bodies 40000] [--seconds 15] [--connections 50] [--rounds 1]`

1. `python -m ivr business add` on a fresh SQLite file, then `python -m ivr serve` on a free port;
2. `--bodies` distinct status callbacks (a message's queued/sent/delivered/read, with failures and
   their ErrorCode now and then), each signed by the same token as the server's, are put into a wrk
   Lua script that posts them in turn (a run longer than the list posts duplicates again, as Twilio
   may: they are answered 204 and store nothing new);
3. wrk runs `--seconds` against ivr serve, then against bench/baseline_app.py (same uvicorn options,
   a constant answer, no body read: the floor) with the same bodies; with `--rounds N`, N times in
   turn with both servers kept running, and the target judged on the median ratio (this machine's
   speed drifts within minutes: one pair of runs has given 0.39x and the next 0.58x);
4. every acknowledged callback must be in the database afterwards: the rows are counted and the
   run fails (exit 1) if any is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sqlite3
import statistics
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlencode

import httpx
from twilio.request_validator import RequestValidator

from bench.load import BUSINESS, NUMBER, add_business, baseline_serve, ivr_serve, server_env
from bench.load_procs import BenchError, Server
from bench.load_report import print_wrk
from bench.load_wrk import WRK_DONE, WrkRun, add_wrk_options, print_ratio, wrk_measured, wrk_missing
from bench.options import positive_int

ACCOUNT = "AC" + "0" * 32
TOKEN = "bench-token-" + "0" * 20  # the server's Auth Token, signing every body posted
PATH = "/twilio/message-status"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench message_status", description=__doc__)
    parser.add_argument(
        "--bodies", type=int, default=40_000, help="distinct signed callbacks (default 40000)"
    )
    add_wrk_options(parser)
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=1,
        help="ivr serve and the floor measured in turn this many times, both kept running (default 1);"
        " the target is judged on the median ratio",
    )
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="experiment: run `ivr serve` with sys.setswitchinterval(SECONDS) (Python's default 0.005)",
    )
    return parser.parse_args(list(argv))


def callbacks(count: int, seed: int) -> list[dict[str, str]]:
    """Status callbacks of WhatsApp messages from the business, as Twilio sends them (a Messaging
    Service: queued, sent, delivered, read; one in ten fails with 63016, one in twenty undelivered)."""
    rng = random.Random(seed)
    out: list[dict[str, str]] = []
    while len(out) < count:
        sid = f"SM{rng.getrandbits(128):032x}"
        to = f"+1415{rng.randrange(10**7):07d}"
        roll = rng.random()
        if roll < 0.1:
            path, code = ["queued", "failed"], "63016"
        elif roll < 0.15:
            path, code = ["queued", "sent", "undelivered"], "30003"
        else:
            path, code = ["queued", "sent", "delivered", "read"], ""
        for status in path:
            params = {
                "AccountSid": ACCOUNT,
                "ApiVersion": "2010-04-01",
                "ChannelInstallSid": "XE" + sid[2:],
                "ChannelPrefix": "whatsapp",
                "ChannelToAddress": to[:-7] + "XXXXXXX",
                "From": f"whatsapp:{NUMBER}",
                "MessageSid": sid,
                "MessageStatus": status,
                "MessagingServiceSid": "MG" + "1" * 32,
                "SmsSid": sid,
                "SmsStatus": status,
                "To": f"whatsapp:{to}",
            }
            if status in ("failed", "undelivered"):
                params["ErrorCode"] = code
            out.append(params)
    return out[:count]


def write_script(path: Path, url: str, token: str, bodies: list[dict[str, str]]) -> None:
    """A wrk script posting each signed body in turn (form bodies and base64 hold no quote)."""
    validator = RequestValidator(token)
    lines = ["local bodies = {"]
    for params in bodies:
        lines.append(f'  {{"{urlencode(params)}", "{validator.compute_signature(url, params)}"}},')
    lines.append("}")
    lines.append(
        "local i = 0\n"
        "request = function()\n"
        "  i = i % #bodies + 1\n"
        "  local headers = {}\n"
        '  headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
        '  headers["X-Twilio-Signature"] = bodies[i][2]\n'
        '  return wrk.format("POST", nil, headers, bodies[i][1])\n'
        "end\n"
    )
    path.write_text("\n".join(lines) + WRK_DONE)


def stored(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as conn:
        statuses = conn.execute("SELECT count(*) FROM message_statuses").fetchone()[0]
        messages = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    return int(statuses), int(messages)


def signed_post(url: str, token: str, params: dict[str, str]) -> httpx.Response:
    """One webhook posted as Twilio posts it: a urlencoded form, signed with the token."""
    return httpx.post(
        url,
        content=urlencode(params),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": RequestValidator(token).compute_signature(url, params),
        },
    )


@contextlib.contextmanager
def webhook_bench(
    prefix: str, args: argparse.Namespace, headline: str
) -> Iterator[tuple[Path, dict[str, str]]]:
    """A fresh folder with the business added and the server environment (token: TOKEN), the
    run's headline printed; for wrk against ivr serve and then the floor."""
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        directory = Path(name)
        env = server_env(directory, TOKEN)
        add_business(env)
        print(headline)
        print(f"wrk: {args.connections} connections, {args.seconds} s per run, one thread")
        print()
        yield directory, env


def run(server: Server, script: Path, args: argparse.Namespace, check: bool, token: str) -> WrkRun:
    url = server.base_url + PATH
    reply = signed_post(url, token, callbacks(1, args.seed + 99)[0])
    if reply.status_code not in (200, 204) or (check and reply.status_code != 204):
        raise BenchError(
            f"{server.name} answers the status callback with HTTP {reply.status_code}: {reply.text}"
        )
    return wrk_measured(server, script, url, args.connections, args.seconds)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    if wrk_missing():
        return 2
    token = TOKEN
    bodies = callbacks(args.bodies, args.seed)
    headline = f"{args.bodies:,} distinct signed status callbacks of WhatsApp messages from {BUSINESS}"
    with webhook_bench("bench-message-status-", args, headline) as (directory, env):
        ratios: list[float] = []
        posted = 0  # the most callbacks one round posted (each round's wrk starts at the first body)
        with (
            ivr_serve(directory, env, args.switch_interval) as ours_server,
            baseline_serve(directory, env) as floor,
        ):
            write_script(directory / "ours.lua", ours_server.base_url + PATH, token, bodies)
            write_script(directory / "floor.lua", floor.base_url + PATH, token, bodies)
            for n in range(args.rounds):
                label = f", round {n + 1} of {args.rounds}" if args.rounds > 1 else ""
                ours = run(ours_server, directory / "ours.lua", args, True, token)
                print_wrk(f"wrk: POST /twilio/message-status against ivr serve{label}", ours)
                posted = max(posted, int(ours.figures["requests"]) - int(ours.figures["status_errors"]))
                floors = run(floor, directory / "floor.lua", args, False, token)
                print_wrk(f"wrk: the same posts against the floor (bench/baseline_app.py){label}", floors)
                print_ratio(ours, floors)
                ratios.append(ours.rate / floors.rate)
                print()
        acknowledged = min(posted, args.bodies)
        statuses, messages = stored(directory / "ivr.db")
        expected_messages = len({b["MessageSid"] for b in bodies[:acknowledged]})
        print(
            f"stored: {statuses:,} statuses of {messages:,} messages"
            f" (posted at least {acknowledged:,} distinct callbacks, the probe included one more)"
        )
        ratio = statistics.median(ratios)
        if args.rounds > 1:
            print(f"ours / floor, requests/s, median of {args.rounds} alternating rounds: {ratio:.2f}x")
        print(f"target: within 1.5x of the floor's requests/s: {'met' if ratio >= 1 / 1.5 else 'NOT met'}")
        if statuses < acknowledged + 1 or messages < expected_messages:
            print(f"LOST: {acknowledged + 1 - statuses} acknowledged callbacks are not in the database")
            return 1
    return 0
