"""Micro-timings of what one webhook does, in process: `python -m bench hotspots`.

The load benchmark (`python -m bench load --py-spy FILE`, then `python -m bench.profile_report`)
says where the server's time goes under load; this one times each piece alone, on one idle event
loop, so the figures can be compared with each other and with what a replacement would cost:

- the signature check as done now (twilio's RequestValidator.validate, which computes the HMAC for
  the URL with and without a port: two HMACs) against one HMAC-SHA1;
- form parsing as done now (Starlette's Request.form(), python-multipart) against
  urllib.parse.parse_qsl on the body;
- the store reads of a voice webhook (business_for_number, script_version, standing) through
  aiosqlite (each `_fetchone` is three hops to its thread: execute, fetchone, close) against the
  same SELECTs on a plain sqlite3 connection on the calling thread;
- building the TwiML: start_call (first reply) and confirmation (after a decision);
- one durable decision (record_decision: group-commit writer, fsync) alone.

Each figure is the median of `--repeat` rounds of `--number` calls, in microseconds per call.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from twilio.request_validator import RequestValidator

from bench.load_wrk import voice_params
from bench.workload import opt_in_decision
from consent_store import SQLiteStore
from ivr.businesses import add_business
from ivr.twilio.call_flow import CallContext, LoadedScript, confirmation, start_call
from voice_scripts import parse_script

NUMBER = "+15550199001"
PHONE = "+14155550100"
TOKEN = "0123456789abcdef0123456789abcdef"
URL = "http://127.0.0.1:8000/twilio/voice"
PARAMS = voice_params(PHONE, NUMBER)


def timed(work: Callable[[], Any], number: int, repeat: int) -> float:
    rounds = []
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            work()
        rounds.append((time.perf_counter() - started) / number)
    return 1e6 * statistics.median(rounds)


async def timed_async(work: Callable[[], Awaitable[Any]], number: int, repeat: int) -> float:
    rounds = []
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            await work()
        rounds.append((time.perf_counter() - started) / number)
    return 1e6 * statistics.median(rounds)


def one_hmac(url: str, params: dict[str, str]) -> str:
    text = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(TOKEN.encode(), text.encode(), hashlib.sha1).digest()).decode()


async def parse_form(body: bytes) -> Any:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/twilio/voice",
        "headers": [(b"content-type", b"application/x-www-form-urlencoded")],
        "query_string": b"",
    }
    return await Request(scope, receive).form()


def line(label: str, micros: float, note: str = "") -> None:
    print(f"  {label:<62} {micros:>9.1f} µs{('   ' + note) if note else ''}")


async def run(number: int, repeat: int) -> None:
    directory = Path(tempfile.mkdtemp(prefix="bench-hotspots-"))
    store = SQLiteStore(directory / "ivr.db")
    await store.open()
    try:
        business = await add_business(store, "Bench Bakery", [NUMBER], ["order updates"])
        validator = RequestValidator(TOKEN)
        signature = validator.compute_signature(URL, PARAMS)
        body = urlencode(PARAMS).encode()

        print("signature check")
        line(
            "RequestValidator.validate (now: two HMACs + URL parsing)",
            timed(lambda: validator.validate(URL, PARAMS, signature), number, repeat),
        )
        line(
            "one HMAC-SHA1 over the URL and sorted parameters",
            timed(lambda: one_hmac(URL, PARAMS), number, repeat),
        )
        print("form parsing")
        line(
            "Starlette Request.form() (python-multipart)",
            await timed_async(lambda: parse_form(body), number, repeat),
        )
        line("urllib.parse.parse_qsl(body)", timed(lambda: dict(parse_qsl(body.decode())), number, repeat))

        print("store reads of one voice webhook (sequential, idle server)")
        by_number = await timed_async(lambda: store.business_for_number(NUMBER), number, repeat)
        script = await timed_async(lambda: store.script_version(business.name, "en-US"), number, repeat)
        standing = await timed_async(lambda: store.standing(PHONE, business.name), number, repeat)
        line("business_for_number (3 SELECTs, 9 aiosqlite hops)", by_number)
        line("script_version (1 SELECT, 3 hops)", script)
        line("standing (1 SELECT, 3 hops)", standing)
        line("  all three, as a voice webhook does them", by_number + script + standing)
        conn = sqlite3.connect(directory / "ivr.db", isolation_level=None)
        try:
            line(
                "same 5 SELECTs on a plain sqlite3 connection, calling thread",
                timed(lambda: _direct_reads(conn, business.name), number, repeat),
                "(what a synchronous read would cost)",
            )
        finally:
            conn.close()
        stored = await store.script_version(business.name, "en-US")
        line(
            "parse_script(TOML) of the stored script (cached per text now)",
            timed(lambda: parse_script(stored.text), max(1, number // 10), repeat),
        )

        print("TwiML")
        ctx = CallContext(
            business=business,
            scripts={"en-US": LoadedScript(parse_script(stored.text), stored.version)},
            opted_in=False,
            base_url="http://127.0.0.1:8000",
        )
        recording = "http://127.0.0.1:8000/twilio/recording"
        line(
            "start_call (render consent prompt + build + serialise)",
            timed(lambda: start_call(ctx, recording, None), number, repeat),
        )
        line(
            "confirmation (render + build + serialise)",
            timed(lambda: confirmation(ctx, "en-US", "opt_in"), number, repeat),
        )
        line(
            "ctx.render('en-US', 'consent') alone (Jinja sandbox)",
            timed(lambda: ctx.render("en-US", "consent"), number, repeat),
        )

        print("durable write")
        counter = iter(range(10**9))

        async def decide() -> None:
            n = next(counter)
            await store.record_decision(opt_in_decision(business, f"CA{n:032x}", PHONE, "x"))

        line(
            "record_decision alone (one event per COMMIT, fsync)",
            await timed_async(decide, max(1, number // 20), repeat),
        )
    finally:
        await store.close()


def _direct_reads(conn: sqlite3.Connection, name: str) -> None:
    conn.execute("SELECT business FROM numbers WHERE number = ?", (NUMBER,)).fetchall()
    conn.execute(
        "SELECT name, message_types, locales, demo FROM businesses WHERE name = ?", (name,)
    ).fetchall()
    conn.execute("SELECT number FROM numbers WHERE business = ? ORDER BY number", (name,)).fetchall()
    conn.execute(
        "SELECT business, locale, version, status, text, sha256, created_at, author FROM scripts"
        " WHERE business = ? AND locale = ? AND status = 'published' ORDER BY version DESC LIMIT 1",
        (name, "en-US"),
    ).fetchall()
    conn.execute(
        "SELECT e.action, e.recorded_at, e.seq, e.hash, e.body FROM subjects s"
        " JOIN events e ON e.subject = s.subject"
        " WHERE s.phone = ? AND e.business = ? AND e.kind = 'decision'"
        " AND e.action IN ('opt_in', 'opt_out') ORDER BY e.seq DESC LIMIT 1",
        (PHONE, name),
    ).fetchall()


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench hotspots", description=__doc__.split("\n")[0])
    parser.add_argument("--number", type=int, default=2000, help="calls per round (default 2000)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the median is shown (default 5)")
    args = parser.parse_args(list(argv))
    print("hotspots: each piece of a webhook alone, median µs per call (one idle event loop)")
    asyncio.run(run(args.number, args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
