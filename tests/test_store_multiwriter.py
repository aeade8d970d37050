"""Two processes writing one SQLite log (the server and an `ivr` command) keep one linear chain."""

from __future__ import annotations

import asyncio
from pathlib import Path

from consent_store import ConsentDecision, SQLiteStore


def decision(i: int) -> ConsentDecision:
    return ConsentDecision(
        f"CA{i:032d}", f"+1415555{i:04d}", "Acme", "opt_in", ("offers",), "1", "en-US", 1, "a" * 64, "spoken"
    )


async def test_two_stores_on_one_file_interleave_appends_into_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "ivr.db"
    async with SQLiteStore(path) as server, SQLiteStore(path) as command:
        for i in range(0, 40, 2):
            await server.record_decision(decision(i))
            await command.record_decision(decision(i + 1))
        await asyncio.gather(
            *(s.record_decision(decision(100 + i)) for i, s in enumerate([server, command] * 10))
        )
        result = await server.verify()
    assert result.intact and result.count == 60
