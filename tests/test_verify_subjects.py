"""`ivr verify` holds each caller's phone to the commitment the chain holds, on both backends.

The chain keeps a salted commitment per caller; the phone sits outside it, in `subjects`.
Editing a phone there (consent moved to another number), or deleting the row without a
chained erasure, must fail verification naming the record; `ivr forget` must not.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from consent_store import Business, ConsentDecision, open_store, text_sha256
from consent_store.sqlite.verify import verify_database
from consent_store.writing import subject_commitment
from tests.cli_runner import run_ivr

pytest_plugins = ["tests.pg_server"]

ACME = "Acme Parcels"
CALLER = "+14155550123"
OTHER = "+14155550999"
THIEF = "+14155550666"


@dataclass
class Filled:
    url: str
    subject: str  # CALLER's
    first_seq: int  # the first record naming it


async def sql(url: str, statement: str, *params: str) -> list[tuple[object, ...]]:
    """Run one statement straight on the database, past the store (the tampering)."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return [tuple(row) for row in conn.execute(statement, params)]
    conn = await asyncpg.connect(url)
    try:
        numbered = statement
        for n in range(1, len(params) + 1):
            numbered = numbered.replace("?", f"${n}", 1)
        return [tuple(row) for row in await conn.fetch(numbered, *params)]
    finally:
        await conn.close()


def decision(n: int, phone: str) -> ConsentDecision:
    return ConsentDecision(
        f"CA{n:032d}", phone, ACME, "opt_in", ("updates",), "1", "en-US", 1, text_sha256("hi"), "hi"
    )


@pytest.fixture
async def filled(store_url: str) -> AsyncIterator[Filled]:
    """A database holding a business and decisions of two callers, closed again."""
    url = store_url
    async with open_store(url) as store:
        await store.add_business(
            Business(ACME, ("+15550001111",), ("updates",), ("en-US",)), {"en-US": "hi"}, "t"
        )
        for n, phone in enumerate([OTHER, CALLER, OTHER, CALLER]):
            await store.record_decision(decision(n, phone))
    [(subject,)] = await sql(url, "SELECT subject FROM subjects WHERE phone = ?", CALLER)
    [(first_seq,)] = await sql(url, "SELECT MIN(seq) FROM events WHERE subject = ?", str(subject))
    yield Filled(url, str(subject), int(str(first_seq)))


def verify(url: str) -> subprocess.CompletedProcess[str]:
    """`ivr verify -q` in this process (tests/cli_runner.py)."""
    return run_ivr("verify", "-q", env={"IVR_DATABASE_URL": url})


async def failure(url: str) -> str:
    result = await asyncio.to_thread(verify, url)
    assert result.returncode == 1, result.stderr
    [line] = result.stderr.splitlines()
    return line


async def test_intact_store_verifies(filled: Filled) -> None:
    result = await asyncio.to_thread(verify, filled.url)
    assert result.returncode == 0 and result.stdout.startswith("ok: 5 records"), result.stderr


async def test_a_phone_edited_in_the_subjects_table_fails_verify_naming_the_record(filled: Filled) -> None:
    await sql(filled.url, "UPDATE subjects SET phone = ? WHERE phone = ?", THIEF, CALLER)
    line = await failure(filled.url)
    assert line.startswith(f"ivr: error: caller's phone not bound at record {filled.first_seq}: ")
    assert f"subject {filled.subject} was changed in the subjects table" in line
    assert "the chain itself is intact, 5 records" in line


async def test_a_phone_moved_with_a_fresh_commitment_still_fails(filled: Filled) -> None:
    """Whoever knows the formula can make a row that commits to itself, but not to the chain's subject."""
    salt = "00" * 16
    await sql(
        filled.url,
        "UPDATE subjects SET phone = ?, salt = ?, subject = ? WHERE phone = ?",
        THIEF,
        salt,
        subject_commitment(salt, THIEF),
        CALLER,
    )
    line = await failure(filled.url)
    assert f"at record {filled.first_seq}: its subject {filled.subject} was deleted" in line


async def test_a_subjects_row_deleted_without_a_chained_erasure_fails_verify(filled: Filled) -> None:
    await sql(filled.url, "DELETE FROM subjects WHERE phone = ?", CALLER)
    line = await failure(filled.url)
    assert (
        f"record {filled.first_seq}: its subject {filled.subject} was deleted from the subjects table" in line
    )
    assert "without a chained erasure" in line


async def test_two_tampered_subjects_name_the_first_record_and_count_the_other(filled: Filled) -> None:
    await sql(filled.url, "UPDATE subjects SET phone = ? WHERE phone = ?", THIEF, CALLER)
    await sql(filled.url, "DELETE FROM subjects WHERE phone = ?", OTHER)
    line = await failure(filled.url)
    assert "not bound at record 2: its subject" in line and "deleted" in line  # OTHER called first
    assert line.endswith("1 more subject affected (the chain itself is intact, 5 records)")


async def test_ivr_forget_is_a_chained_erasure_and_still_verifies(filled: Filled) -> None:
    forget = await asyncio.to_thread(
        run_ivr, "forget", "--phone", CALLER, env={"IVR_DATABASE_URL": filled.url}
    )
    assert forget.returncode == 0, forget.stderr
    assert await sql(filled.url, "SELECT phone FROM subjects WHERE phone = ?", CALLER) == []
    result = await asyncio.to_thread(verify, filled.url)
    assert result.returncode == 0 and result.stdout.startswith("ok: 6 records"), result.stderr


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # SQLite alone verifies in slices
async def test_parallel_verify_checks_the_subjects_beside_the_slices(filled: Filled) -> None:
    path = Path(filled.url.removeprefix("sqlite:///"))
    intact = await asyncio.to_thread(verify_database, path, {}, (), 1, 2)
    assert intact.intact and intact.count == 5
    await sql(filled.url, "DELETE FROM subjects WHERE phone = ?", CALLER)
    broken = await asyncio.to_thread(verify_database, path, {}, (), 1, 2)
    assert (broken.count, broken.first_bad_seq) == (5, filled.first_seq)
    assert broken.problem is not None and "without a chained erasure" in broken.problem
