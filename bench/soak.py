"""Soak: minutes of mixed calls against a real `ivr serve`, then proof that nothing was lost.

Each call is drawn at random: opt in, decline, silence, repeats, wrong keys, a hang-up
mid-prompt; recording callbacks before, after, twice, absent or never; and a replay of
the decision post (Twilio's retry) on some. At the end: no 5xx, every decision whose
confirmation a caller heard is in the export exactly once, `ivr verify` passes, and the
server's RSS over time. Loopback only, bounded by --minutes. Not a test: run by hand,
`python -m bench soak --minutes 10`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import httpx

from bench.load import add_business, run_ivr, server_env
from bench.load_procs import free_port, sample, serve
from ivr.exceptions import EmulatorError
from ivr.twilio.emulator import HANG_UP, TwilioEmulator

NUMBER = "+15550199001"
CONFIRMED = "Your choice has been recorded"
KEY_PLANS: list[list[str]] = [
    ["1"],
    ["1"],
    ["2"],
    ["-", "1"],
    ["*", "2"],
    ["7", "1"],
    ["-", "-", "-"],
    [HANG_UP],
    ["9", HANG_UP],
]
RECORDING = ["after", "after", "before", "twice", "none", "absent"]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to run the calls (default 10)")
    parser.add_argument("--concurrency", type=int, default=20, help="calls at once (default 20)")
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args(argv)


class Soak:
    def __init__(self, twilio: TwilioEmulator, rng: random.Random) -> None:
        self.twilio = twilio
        self.rng = rng
        self.confirmed: list[str] = []
        self.outcomes: Counter[str] = Counter()
        self.server_errors = 0
        self.calls = 0

    async def one_call(self, caller: str) -> None:
        heard: list[str] = []
        self.twilio.on_say = None
        keys = list(self.rng.choice(KEY_PLANS))
        recording = self.rng.choice(RECORDING)
        try:
            call = await self.twilio.call(NUMBER, caller, keys, recording=recording)  # type: ignore[arg-type]
            heard = [s.text for s in call.spoken]
            if any(CONFIRMED in text for text in heard):
                self.confirmed.append(call.call_sid)
                if self.rng.random() < 0.2:  # Twilio retries the decision post
                    url = next(u for u, _ in reversed(call.responses) if "/twilio/gather" in u)
                    digits = next(k for k in reversed(call.pressed) if k)
                    again = await self.twilio.post(
                        url, self.twilio.call_params(call.call_sid, NUMBER, caller) | {"Digits": digits}
                    )
                    self.server_errors += again.status_code >= 500
            self.outcomes[call.ended_by] += 1
        except EmulatorError as exc:
            self.server_errors += " 5" in str(exc)
            self.outcomes["emulator error"] += 1
        self.calls += 1

    async def worker(self, deadline: float, index: int) -> None:
        while time.monotonic() < deadline:
            caller = f"+1415{index:03d}{self.rng.randrange(10_000):04d}"
            await self.one_call(caller)


async def drive(
    args: argparse.Namespace, base: str, token: str, pid: int
) -> tuple[Soak, list[tuple[float, float]]]:
    rss: list[tuple[float, float]] = []
    async with httpx.AsyncClient(
        timeout=30, limits=httpx.Limits(max_connections=args.concurrency * 2)
    ) as client:
        soak = Soak(TwilioEmulator(client, base, token), random.Random(args.seed))
        started = time.monotonic()
        deadline = started + args.minutes * 60

        async def watch() -> None:
            while time.monotonic() < deadline:
                rss.append((time.monotonic() - started, sample(pid).rss_kb / 1024))
                await asyncio.sleep(30)

        await asyncio.gather(watch(), *(soak.worker(deadline, i) for i in range(args.concurrency)))
    return soak, rss


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    token = "soak-token-" + str(args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        directory = Path(tmp)
        env = server_env(directory, token)
        add_business(env)
        port = free_port()
        command = [sys.executable, "-m", "ivr", "serve", "--port", str(port)]
        with serve("ivr serve", command, env, directory / "serve.log", port) as server:
            soak, rss = asyncio.run(drive(args, f"http://127.0.0.1:{port}", token, server.pid))
            rss.append((args.minutes * 60, sample(server.pid).rss_kb / 1024))
        verified = run_ivr(env, "verify", timeout=600)
        export = run_ivr(env, "export", "--format", "jsonl", timeout=600)
        exported = [json.loads(line) for line in export.stdout.splitlines()]
    sids = Counter(row["call_sid"] for row in exported)
    lost = [sid for sid in soak.confirmed if sid not in sids]
    duplicated = [sid for sid, count in sids.items() if count > 1]
    print(f"soak: {args.minutes:g} min, {args.concurrency} calls at once, seed {args.seed}")
    print(f"  calls {soak.calls:,}; outcomes {dict(soak.outcomes)}")
    print(
        f"  confirmed decisions {len(soak.confirmed):,}; in the export {len(exported):,}; lost {len(lost)}; "
        f"duplicated {len(duplicated)}; 5xx answers {soak.server_errors}"
    )
    print(f"  ivr verify: exit {verified.returncode}: {verified.stdout.strip() or verified.stderr.strip()}")
    print("  server RSS MB over time: " + ", ".join(f"{t / 60:.1f} min {mb:.1f}" for t, mb in rss))
    ok = not lost and not duplicated and soak.server_errors == 0 and verified.returncode == 0
    print("  result: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1
