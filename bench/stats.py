"""`python -m bench.stats`: time `opt_in_quality` (the figures behind `ivr stats`) over 1M decisions.

The store is filled with `bench.fill.fill_store` (decisions only, 8 businesses), then
`--statuses N` call status callbacks, `--prompts N` prompt records (half re-prompts of
decided calls, half calls that ended with the goodbye after three silent prompts) and one
message-types change are appended through the store API, so every part of the query has
rows to read. Printed beside it, the
baselines: a plain `GROUP BY` count over the same business's decisions, and a
full read of the same rows' JSON fields (the floor for anything that reads the bodies).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.fill import fill_store
from bench.workload import BUSINESSES
from consent_store import CallStatus, PromptPlayed, SQLiteStore


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.stats", description=__doc__)
    parser.add_argument("--decisions", type=int, default=1_000_000, help="decisions to fill (default 1M)")
    parser.add_argument("--statuses", type=int, default=20_000, help="call statuses appended via the API")
    parser.add_argument("--prompts", type=int, default=20_000, help="prompt records appended via the API")
    parser.add_argument("--business", default="Bright Bank", help="business whose figures are timed")
    parser.add_argument("--runs", type=int, default=3, help="timed runs (median printed)")
    parser.add_argument("--dir", type=Path, default=None, help="where the database is created")
    return parser.parse_args(argv)


def _timed(work: object, runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = work() if callable(work) else None
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


async def _append_and_time(path: Path, args: argparse.Namespace) -> tuple[list[float], int]:
    async with SQLiteStore(path) as store:
        business = next(b for b in BUSINESSES if b.name == args.business)
        sids = [
            str(r[0])
            for r in await store._fetchall(
                "SELECT call_sid FROM events WHERE kind = 'decision' AND business = ? LIMIT ?",
                (business.name, args.statuses),
            )
        ]
        for start in range(0, len(sids), 200):
            await asyncio.gather(
                *(
                    store.record_call_status(CallStatus(sid, "completed", 20 + i % 40, business.name))
                    for i, sid in enumerate(sids[start : start + 200])
                )
            )
        locale = business.locales[0]
        reprompted = sids[: args.prompts // 2]
        prompts = [PromptPlayed(s, business.name, "consent", "no_input", 2, locale, 1) for s in reprompted]
        for n in range(args.prompts // 4):  # undecided calls: two re-prompts, then the goodbye
            sid = f"CAbenchundecided{n:016d}"
            prompts += [
                PromptPlayed(sid, business.name, "consent", "no_input", 3, locale, 1),
                PromptPlayed(sid, business.name, "goodbye", "no_input", 3, locale, 1),
            ]
        for start in range(0, len(prompts), 200):
            await asyncio.gather(*(store.record_prompt(p) for p in prompts[start : start + 200]))
        await store.set_message_types(business.name, [*business.message_types, "news"], "bench")
        times, rows = [], 0
        for _ in range(args.runs):
            started = time.perf_counter()
            figures = await store.opt_in_quality(business.name, business.locales)
            times.append(time.perf_counter() - started)
            rows = sum(s.calls for s in figures.scripts)
        return times, rows


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as directory:
        path = Path(directory) / "stats.db"
        filled = fill_store(path, args.decisions + len(BUSINESSES))
        print(f"filled {filled.events:,} events in {filled.seconds:.1f} s; sqlite {sqlite3.sqlite_version}")
        times, calls = asyncio.run(_append_and_time(path, args))
        conn = sqlite3.connect(path)
        try:
            count_sql = (
                "SELECT action, count(*) FROM events WHERE kind = 'decision' AND business = ? GROUP BY action"
            )
            json_sql = (
                "SELECT json_extract(body, '$.data.locale'), json_extract(body, '$.data.script_version'),"
                " action, count(*) FROM events WHERE kind = 'decision' AND business = ? GROUP BY 1, 2, 3"
            )
            base, _ = _timed(lambda: conn.execute(count_sql, (args.business,)).fetchall(), args.runs)
            floor, _ = _timed(lambda: conn.execute(json_sql, (args.business,)).fetchall(), args.runs)
            decisions = conn.execute(
                "SELECT count(*) FROM events WHERE kind = 'decision' AND business = ?", (args.business,)
            ).fetchone()[0]
        finally:
            conn.close()
    print(f"business {args.business!r}: {decisions:,} decisions, {calls:,} calls counted")
    print(f"baseline: plain GROUP BY action count over the same rows    {base:.3f} s")
    print(f"baseline: GROUP BY locale, version, action (reads JSON)     {floor:.3f} s")
    print(
        f"opt_in_quality (all figures, follow-ups, message types)    {statistics.median(times):.3f} s"
        f"  (runs: {', '.join(f'{t:.3f}' for t in times)}; target < 2 s)"
    )
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
