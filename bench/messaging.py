"""wrk on POST /twilio/messaging: incoming WhatsApp messages, beside the bare-Starlette floor.

`python -m bench messaging [--bodies 20000] [--stop-share 0.05] [--seconds 15] [--connections 50]`

1. `python -m ivr business add` on a fresh SQLite file, then `python -m ivr serve` on a free port;
2. `--bodies` distinct incoming WhatsApp messages to the business's number, signed by the
   server's token, as Twilio sends them (ivr/twilio/message_emulator.py): most are ordinary text (an
   empty <Response/>, nothing written); `--stop-share` of them are STOP from distinct senders
   (a chained opt-out, durably committed before the reply, and its confirmation). A run longer
   than the list posts them again, as Twilio's retries would: the same reply, nothing new;
3. wrk runs `--seconds` against ivr serve, then against bench/baseline_app.py (the floor);
4. every STOP acknowledged must be an opt-out in the database afterwards (exit 1 otherwise).
"""

from __future__ import annotations

import argparse
import random
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from bench.load import BUSINESS, NUMBER, baseline_serve, ivr_serve
from bench.load_procs import BenchError, Server
from bench.load_report import print_wrk
from bench.load_wrk import WrkRun, add_wrk_options, print_ratio, wrk_measured, wrk_missing
from bench.message_status import TOKEN, signed_post, webhook_bench, write_script
from ivr.twilio.message_emulator import message_params

ACCOUNT = "AC" + "0" * 32
PATH = "/twilio/messaging"
TEXTS = ("Hi", "thanks!", "When will my order arrive?", "ok", "👍", "Can I change the address?")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench messaging", description=__doc__)
    parser.add_argument("--bodies", type=int, default=20_000, help="distinct signed messages (default 20000)")
    parser.add_argument(
        "--stop-share", type=float, default=0.05, help="share of STOP messages (default 0.05)"
    )
    add_wrk_options(parser)
    return parser.parse_args(list(argv))


def messages(count: int, stop_share: float, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    out = []
    for n in range(count):
        stop = rng.random() < stop_share
        sender = f"+1415{n:07d}"
        body = "STOP" if stop else rng.choice(TEXTS)
        out.append(
            message_params(ACCOUNT, f"SM{rng.getrandbits(128):032x}", NUMBER, sender, body, whatsapp=True)
        )
    return out


def opt_outs(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM events WHERE kind = 'decision'").fetchone()[0])


def probe(server: Server, token: str, expect_reply: bool) -> None:
    params = message_params(ACCOUNT, "SM" + "f" * 32, NUMBER, "+14150000000", "hello", whatsapp=True)
    reply = signed_post(server.base_url + PATH, token, params)
    if reply.status_code != 200 or (expect_reply and "<Response/>" not in reply.text):
        raise BenchError(f"{server.name} answers a message with HTTP {reply.status_code}: {reply.text[:200]}")


def run_wrk(server: Server, script: Path, args: argparse.Namespace) -> WrkRun:
    """wrk with the script against the server's /twilio/messaging (as bench/message_status.py runs it)."""
    return wrk_measured(server, script, server.base_url + PATH, args.connections, args.seconds)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    if wrk_missing():
        return 2
    token = TOKEN
    bodies = messages(args.bodies, args.stop_share, args.seed)
    stops = [b for b in bodies if b["Body"] == "STOP"]
    headline = f"{args.bodies:,} distinct signed WhatsApp messages to {BUSINESS}, {len(stops):,} of them STOP"
    with webhook_bench("bench-messaging-", args, headline) as (directory, env):
        ours: WrkRun
        with ivr_serve(directory, env) as server:
            probe(server, token, True)
            write_script(directory / "ours.lua", server.base_url + PATH, token, bodies)
            ours = run_wrk(server, directory / "ours.lua", args)
            print_wrk("wrk: POST /twilio/messaging against ivr serve", ours)
        posted = min(int(ours.figures["requests"]) - int(ours.figures["status_errors"]), args.bodies)
        expected = sum(1 for b in bodies[:posted] if b["Body"] == "STOP")
        found = opt_outs(directory / "ivr.db")
        print(f"stored: {found:,} opt-outs (at least {expected:,} STOP acknowledged)")
        if found < expected:
            raise BenchError(f"{expected - found} acknowledged STOP messages have no opt-out")
        print()
        with baseline_serve(directory, env) as server:
            probe(server, token, False)
            write_script(directory / "floor.lua", server.base_url + PATH, token, bodies)
            floor = run_wrk(server, directory / "floor.lua", args)
            print_wrk("wrk: the same posts against the floor (bench/baseline_app.py)", floor)
        print_ratio(ours, floor)
    return 0
