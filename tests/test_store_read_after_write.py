"""A decision is visible to the very next read, however many reads run at the same time."""

from __future__ import annotations

import asyncio
from pathlib import Path

from consent_store import ConsentDecision, SQLiteStore


async def test_standing_right_after_a_decision_sees_it_under_concurrent_reads(tmp_path: Path) -> None:
    stale = 0
    async with SQLiteStore(tmp_path / "ivr.db") as store:

        async def caller(worker: int) -> None:
            nonlocal stale
            for i in range(50):
                phone = f"+1415{worker:03d}{i:04d}"
                await store.record_decision(
                    ConsentDecision(
                        f"CA{worker}x{i}",
                        phone,
                        "Acme",
                        "opt_in",
                        ("x",),
                        "1",
                        "en-US",
                        1,
                        "a" * 64,
                        "spoken",
                    )
                )
                standing = await store.standing(phone, "Acme")
                stale += standing is None or standing.action != "opt_in"

        async def other_reads() -> None:
            for _ in range(500):
                await store.standing("+10000000000", "Acme")

        await asyncio.gather(*(caller(w) for w in range(20)), *(other_reads() for _ in range(20)))
    assert stale == 0
