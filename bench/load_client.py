"""The load generator process of `python -m bench load`: whole signed calls against one server.

Started by bench/load.py as `python -m bench.load_client CONFIG_JSON` in its own process, so its
CPU never counts as the server's. It writes one JSON object per line on standard output:
`{"event": "measuring"}` when the warm-up is over, `{"event": "progress", ...}` every
`progress_every` measured calls, and `{"event": "result", ...}` at the end.

This module drives the load (a fixed concurrency or an arrival rate, after a warm-up), chooses who
calls and records what happened; one whole call (its four webhooks, the checks of the replies, the
`lean` and `emulator` clients) is bench/load_callers.py.

About 30% of calls come from a phone that called before (never two calls from one phone at once);
an opted-in phone presses 9 (opt out), others press 1 (70%) or 2 (30%).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.load_callers import EmulatorCaller, LeanCaller

WEBHOOKS = ("voice", "decision", "recording", "status")
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class Config:
    base_url: str
    token: str
    to: str
    concurrency: int = 50
    rate: float | None = None
    calls: int | None = 2000
    seconds: float | None = None
    warmup: int = 200
    check: bool = True
    client: str = "lean"
    progress_every: int = 0
    repeat_share: float = 0.3
    decline_share: float = 0.3
    phone_prefix: int = 201
    max_in_flight: int = 1000
    seed: int = 1

    @classmethod
    def from_json(cls, text: str) -> Config:
        return cls(**json.loads(text))


# -- recording what happened ---------------------------------------------------------


@dataclass
class Recorder:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {w: [] for w in WEBHOOKS})
    errors: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    calls_ok: int = 0
    calls_failed: int = 0
    active: bool = True

    def request(self, webhook: str, seconds: float) -> None:
        if self.active:
            self.latencies[webhook].append(seconds)

    def error(self, webhook: str, message: str) -> None:
        if self.active:
            self.errors[webhook] += 1
            if len(self.examples) < MAX_EXAMPLES:
                self.examples.append(f"{webhook}: {message}")

    def call_done(self, ok: bool) -> None:
        if self.active:
            if ok:
                self.calls_ok += 1
            else:
                self.calls_failed += 1

    @property
    def calls(self) -> int:
        return self.calls_ok + self.calls_failed


def percentiles(values: Sequence[float]) -> dict[str, float | int]:
    """Count, p50/p90/p99/max/mean in milliseconds (nearest rank)."""
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    n = len(ordered)

    def rank(q: float) -> float:
        return 1000 * ordered[min(n - 1, max(0, int(q * n + 0.5) - 1))]

    return {
        "count": n,
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "max": 1000 * ordered[-1],
        "mean": 1000 * sum(ordered) / n,
    }


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


# -- who calls ---------------------------------------------------------------------


class Callers:
    """Phones: new ones, and repeat callers who are not in a call right now."""

    def __init__(self, config: Config) -> None:
        self._rng = random.Random(config.seed)
        self._repeat_share = config.repeat_share
        self._decline_share = config.decline_share
        self._prefix = config.phone_prefix
        self._idle: list[str] = []
        self._opted_in: set[str] = set()
        self._next = 0

    def checkout(self) -> tuple[str, bool, str]:
        """(phone, whether it is opted in, the key it will press)."""
        if self._idle and self._rng.random() < self._repeat_share:
            index = self._rng.randrange(len(self._idle))
            self._idle[index], self._idle[-1] = self._idle[-1], self._idle[index]
            phone = self._idle.pop()
        else:
            self._next += 1
            phone = f"+1{self._prefix:03d}{self._next:07d}"
        opted_in = phone in self._opted_in
        key = "9" if opted_in else ("2" if self._rng.random() < self._decline_share else "1")
        return phone, opted_in, key

    def checkin(self, phone: str, key: str, recorded: bool) -> None:
        if recorded:
            if key == "1":
                self._opted_in.add(phone)
            elif key == "9":
                self._opted_in.discard(phone)
        self._idle.append(phone)


# -- driving the load ----------------------------------------------------------------


@dataclass
class Progress:
    every: int
    started: float
    cpu_started: float
    marks: dict[str, int] = field(default_factory=lambda: {w: 0 for w in WEBHOOKS})
    last_time: float = 0.0
    last_calls: int = 0

    def maybe_emit(self, recorder: Recorder) -> None:
        if not self.every or recorder.calls < self.last_calls + self.every:
            return
        now = time.perf_counter()
        chunk = {w: recorder.latencies[w][self.marks[w] :] for w in WEBHOOKS}
        elapsed = now - (self.last_time or self.started)
        emit(
            "progress",
            calls=recorder.calls,
            calls_ok=recorder.calls_ok,
            errors=sum(recorder.errors.values()),
            seconds=now - self.started,
            chunk_calls_per_s=(recorder.calls - self.last_calls) / elapsed if elapsed > 0 else 0.0,
            chunk={w: percentiles(v) for w, v in chunk.items()},
        )
        self.marks = {w: len(recorder.latencies[w]) for w in WEBHOOKS}
        self.last_time, self.last_calls = now, recorder.calls


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


async def drive(config: Config) -> dict[str, Any]:
    recorder = Recorder(active=False)
    caller: LeanCaller | EmulatorCaller = (
        EmulatorCaller(config, recorder) if config.client == "emulator" else LeanCaller(config, recorder)
    )
    callers = Callers(config)
    counter = 0

    async def one_call() -> None:
        nonlocal counter
        counter += 1
        phone, opted_in, key = callers.checkout()
        recorded = False
        try:
            recorded = await caller.call(counter, phone, opted_in, key)
        finally:
            callers.checkin(phone, key, recorded)

    try:
        # Warm-up: the same load, not recorded (connections, caches, the first pages of the files).
        await run_concurrent(one_call, config.concurrency, config.warmup, None, None)
        recorder.active = True
        emit("measuring")
        started, cpu_started = time.perf_counter(), cpu_seconds()
        progress = Progress(config.progress_every, started, cpu_started)
        deadline = started + config.seconds if config.seconds else None
        if config.rate:
            in_flight_peak = await run_rate(
                one_call, config.rate, config.calls, deadline, config.max_in_flight, recorder, progress
            )
        else:
            in_flight_peak = await run_concurrent(
                one_call, config.concurrency, config.calls, deadline, lambda: progress.maybe_emit(recorder)
            )
        seconds = time.perf_counter() - started
        client_cpu = cpu_seconds() - cpu_started
    finally:
        await caller.close()
    return {
        "client": config.client,
        "check": config.check,
        "concurrency": config.concurrency,
        "rate": config.rate,
        "seconds": seconds,
        "calls": recorder.calls,
        "calls_ok": recorder.calls_ok,
        "calls_failed": recorder.calls_failed,
        "calls_per_s": recorder.calls_ok / seconds if seconds > 0 else 0.0,
        "errors": dict(recorder.errors),
        "examples": recorder.examples,
        "webhooks": {w: percentiles(recorder.latencies[w]) for w in WEBHOOKS},
        "client_cpu_seconds": client_cpu,
        "client_cpu_percent": 100 * client_cpu / seconds if seconds > 0 else 0.0,
        "in_flight_peak": in_flight_peak,
        "connections_opened": caller.pool.opened if isinstance(caller, LeanCaller) else None,
    }


async def run_concurrent(
    one_call: Callable[[], Awaitable[None]],
    concurrency: int,
    calls: int | None,
    deadline: float | None,
    after_call: Callable[[], None] | None,
) -> int:
    """`concurrency` callers, each placing its next call as soon as the last one ended."""
    if calls == 0:
        return 0
    started = 0

    async def worker() -> None:
        nonlocal started
        while (calls is None or started < calls) and (deadline is None or time.perf_counter() < deadline):
            started += 1
            await one_call()
            if after_call is not None:
                after_call()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return concurrency


async def run_rate(
    one_call: Callable[[], Coroutine[Any, Any, None]],
    rate: float,
    calls: int | None,
    deadline: float | None,
    max_in_flight: int,
    recorder: Recorder,
    progress: Progress,
) -> int:
    """A new call every 1/rate seconds (open loop), however many are still going (up to a cap)."""
    tasks: set[asyncio.Task[None]] = set()
    peak = 0
    started = time.perf_counter()
    n = 0

    def finished(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        progress.maybe_emit(recorder)

    while (calls is None or n < calls) and (deadline is None or time.perf_counter() < deadline):
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        while len(tasks) >= max_in_flight:  # the server is this far behind: wait, the rate falls
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        task = asyncio.create_task(one_call())
        tasks.add(task)
        task.add_done_callback(finished)
        peak = max(peak, len(tasks))
        n += 1
    if tasks:
        await asyncio.wait(tasks)
    return peak


def main(argv: Sequence[str]) -> int:
    config = Config.from_json(argv[0])
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        result = runner.run(drive(config))
    emit("result", **result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
