"""Archiving recordings through the REST emulator: recordings/s, and the recording webhook's latency
while the archive fills beside the same webhook with archiving off, in one run.

`python -m bench recordings [--recordings 10000] [--seconds 1] [--concurrency 16]`

1. the REST emulator (ivr/twilio/rest_emulator.py) runs in a process of its own, holding
   `--recordings` completed recordings of `--seconds` each (two-channel 8 kHz 16-bit WAV, 32 kB a
   second), each media request answered by a redirect to a one-use media URL, as Twilio's are;
2. without archiving: `ivr serve` with no Twilio credentials (nothing is fetched) takes the
   recording status callbacks, signed, `--concurrency` at a time: the latency of each;
3. with archiving: a fresh `ivr serve` with TWILIO_ACCOUNT_SID and IVR_TWILIO_API_URL pointing at
   the emulator takes the same callbacks: their latency while the fetcher downloads, hashes,
   writes (fsync) and chains each recording; then the time until every one is archived;
4. `ivr verify` re-hashes the archive; the run fails (exit 1) if a recording is not archived or
   verify does not pass.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
from twilio.request_validator import RequestValidator

from bench.load import add_business, ivr_serve, server_env
from bench.load_procs import BenchError, free_port

ACCOUNT = "AC" + "7" * 32
TOKEN = "bench-recordings-token-0123456789"
TWILIO = "https://api.twilio.com"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench recordings", description=__doc__)
    parser.add_argument("--recordings", type=int, default=10_000, help="recordings (default 10000)")
    parser.add_argument("--seconds", type=int, default=1, help="length of each recording (default 1)")
    parser.add_argument("--concurrency", type=int, default=16, help="callbacks at once (default 16)")
    parser.add_argument("--dir", type=Path, default=None, help="where the databases and archive go")
    parser.add_argument(
        "--timeout", type=float, default=3600, help="seconds to wait for every recording to be archived"
    )
    return parser.parse_args(list(argv))


def sid(prefix: str, n: int) -> str:
    return f"{prefix}{n:032x}"


def serve_api(port: int, count: int, seconds: int) -> None:
    """The REST emulator with `count` recordings, until killed (run in its own process)."""
    import uvicorn

    from ivr.twilio.rest_emulator import TwilioRestEmulator, add_recording

    api = TwilioRestEmulator()
    api.add_account(ACCOUNT, TOKEN)
    for n in range(count):
        add_recording(api, ACCOUNT, sid("CA", n), sid=sid("RE", n), duration=seconds)
    uvicorn.run(api.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")


async def post_callbacks(base: str, count: int, seconds: int, concurrency: int) -> list[float]:
    """Every recording's completed callback, signed as Twilio signs it; each one's latency (s)."""
    url = f"{base}/twilio/recording"
    validator = RequestValidator(TOKEN)
    latencies: list[float] = []
    retries: list[int] = []
    queue = iter(range(count))

    async def worker(client: httpx.AsyncClient) -> None:
        for n in queue:
            params = {
                "AccountSid": ACCOUNT,
                "CallSid": sid("CA", n),
                "RecordingSid": sid("RE", n),
                "RecordingStatus": "completed",
                "RecordingUrl": f"{TWILIO}/2010-04-01/Accounts/{ACCOUNT}/Recordings/{sid('RE', n)}",
                "RecordingDuration": str(seconds),
                "RecordingSource": "StartCallRecordingTwiML",
                "RecordingChannels": "2",
            }
            headers = {"X-Twilio-Signature": validator.compute_signature(url, params)}
            started = time.perf_counter()
            for attempt in range(3):
                try:
                    response = await client.post(url, data=params, headers=headers)
                    break
                except httpx.TransportError:
                    # A kept-alive connection the server closed as the request went out; Twilio
                    # would retry too (the callback is idempotent). Counted, and at most twice.
                    if attempt == 2:
                        raise
                    retries.append(n)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 204:
                raise BenchError(f"recording callback answered {response.status_code}: {response.text[:200]}")

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    if retries:
        print(f"({len(retries)} callbacks sent again after a dropped connection)", flush=True)
    return latencies


def archived(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(
            conn.execute("SELECT count(*) FROM events WHERE kind = 'recording_archived'").fetchone()[0]
        )


def percentile(values: list[float], share: float) -> float:
    return statistics.quantiles(values, n=1000)[int(share * 1000) - 1] if len(values) > 1 else values[0]


def describe(name: str, latencies: list[float]) -> str:
    ms = [v * 1000 for v in latencies]
    return (
        f"| {name} | {len(ms):,} | {statistics.median(ms):.2f} | {percentile(ms, 0.99):.2f} | {max(ms):.2f} |"
    )


def run(args: argparse.Namespace, root: Path) -> int:
    api_port = free_port()
    api_log = (root / "api.log").open("wb")
    api = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.recordings",
            "--serve-api",
            str(api_port),
            str(args.recordings),
            str(args.seconds),
        ],
        stdout=api_log,
        stderr=subprocess.STDOUT,
    )
    try:
        api_url = f"http://127.0.0.1:{api_port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(api_url + "/", timeout=1)
                break
            except httpx.TransportError:
                if api.poll() is not None or time.monotonic() > deadline:
                    raise BenchError("the REST emulator did not start") from None
                time.sleep(0.2)
        rows = []
        for phase, with_archive in (("without archiving", False), ("with archiving", True)):
            directory = root / phase.replace(" ", "-")
            directory.mkdir()
            env = server_env(directory, TOKEN)
            if with_archive:
                env |= {"TWILIO_ACCOUNT_SID": ACCOUNT, "IVR_TWILIO_API_URL": api_url}
            add_business(env)
            with ivr_serve(directory, env) as server:
                started = time.perf_counter()
                latencies = asyncio.run(
                    post_callbacks(server.base_url, args.recordings, args.seconds, args.concurrency)
                )
                posted = time.perf_counter() - started
                rows.append(describe(phase, latencies))
                if not with_archive:
                    continue
                during = archived(directory / "ivr.db")
                while (done := archived(directory / "ivr.db")) < args.recordings:
                    if time.perf_counter() - started > args.timeout:
                        raise BenchError(
                            f"only {done} of {args.recordings} recordings archived after {args.timeout:.0f} s"
                        )
                    time.sleep(0.2)
                elapsed = time.perf_counter() - started
            verify_started = time.perf_counter()
            verified = subprocess.run(
                [sys.executable, "-m", "ivr", "verify", "-q"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            verify_seconds = time.perf_counter() - verify_started
            if verified.returncode != 0:
                raise BenchError(f"ivr verify failed: {verified.stderr.strip()}")
        size = args.recordings * (args.seconds * 32_000 + 44)
        print(
            f"recordings: {args.recordings:,} of {args.seconds} s ({size / 1e6:,.0f} MB of WAV), "
            f"callbacks {args.concurrency} at a time"
        )
        print()
        print("| recording callbacks | count | p50 ms | p99 ms | max ms |")
        print("|---|---|---|---|---|")
        print("\n".join(rows))
        print()
        print(
            f"archived: {args.recordings:,} in {elapsed:.1f} s"
            f" = {args.recordings / elapsed:,.0f} recordings/s"
            f" ({size / elapsed / 1e6:,.1f} MB/s); "
            f"{during:,} archived while the callbacks were still arriving ({posted:.1f} s)"
        )
        print(
            f"ivr verify (chain + re-hash of every recording): {verify_seconds:.1f} s "
            f"= {args.recordings / verify_seconds:,.0f} recordings/s"
        )
        return 0
    finally:
        api.kill()
        api.wait(30)
        api_log.close()


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["--serve-api"]:
        serve_api(int(argv[1]), int(argv[2]), int(argv[3]))
        return 0
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-recordings-", dir=args.dir) as directory:
        try:
            return run(args, Path(directory))
        except BenchError as exc:
            print(f"bench recordings: {exc}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
