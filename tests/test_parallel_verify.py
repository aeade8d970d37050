"""Verification in parallel slices finds exactly what one pass finds."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from consent_store import ConsentDecision, SQLiteStore
from consent_store.sqlite.verify import verify_database

Tamper = Callable[[sqlite3.Connection], None]


async def build(path: Path, decisions: int) -> None:
    async with SQLiteStore(path) as store:
        for i in range(decisions):
            await store.record_decision(
                ConsentDecision(
                    f"CA{i:032d}",
                    f"+1415555{i:04d}",
                    "Acme",
                    "opt_in",
                    ("offers",),
                    "1",
                    "en-US",
                    1,
                    "a" * 64,
                    "spoken",
                )
            )


def unguard(db: sqlite3.Connection) -> None:
    db.execute("DROP TRIGGER events_no_update")
    db.execute("DROP TRIGGER events_no_delete")


TAMPERS: dict[str, Tamper] = {
    "intact": lambda db: None,
    "edit in the second slice": lambda db: db.execute(
        "UPDATE events SET body = replace(body, 'opt_in', 'opt_out') WHERE seq = 31"
    ),
    "delete at a slice boundary": lambda db: db.execute("DELETE FROM events WHERE seq = 21"),
    "delete the last record of a slice": lambda db: db.execute("DELETE FROM events WHERE seq = 20"),
    "delete a whole slice": lambda db: db.execute("DELETE FROM events WHERE seq BETWEEN 21 AND 40"),
    "delete the tail": lambda db: db.execute("DELETE FROM events WHERE seq > 45"),
    "swap across a boundary": lambda db: (
        db.execute("UPDATE events SET seq = -1 WHERE seq = 20"),
        db.execute("UPDATE events SET seq = 20 WHERE seq = 21"),
        db.execute("UPDATE events SET seq = 21 WHERE seq = -1"),
    ),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed store of 59 events (slices of 20 with 3 workers, 30 with 2), built once: each
    test tampers with its own copy."""
    path = tmp_path_factory.mktemp("built") / "ivr.db"
    asyncio.run(build(path, 59))
    return path


def copy_store(built: Path, folder: Path) -> Path:
    """A copy of the closed store's files (the database and whatever lies beside it)."""
    for file in built.parent.glob(built.name + "*"):
        shutil.copyfile(file, folder / file.name)
    return folder / built.name


@pytest.mark.parametrize("name", sorted(TAMPERS))
@pytest.mark.parametrize("workers", [2, 3])
def test_parallel_verification_agrees_with_a_single_pass(
    built: Path, tmp_path: Path, name: str, workers: int
) -> None:
    path = copy_store(built, tmp_path)
    with sqlite3.connect(path) as db:
        unguard(db)
        TAMPERS[name](db)
    anchors = {60: "not-a-real-hash"} if name == "delete the tail" else {}
    single = verify_database(path, anchors, parallel_from=10**9)
    parallel = verify_database(path, anchors, parallel_from=0, workers=workers)
    assert (parallel.intact, parallel.first_bad_seq, parallel.count) == (
        single.intact,
        single.first_bad_seq,
        single.count,
    )
    assert parallel.intact == (name == "intact")
    if parallel.intact:
        assert parallel.head == single.head and parallel.count == 59
