"""Verifying a long SQLite chain on every core: slices checked in parallel, then joined.

Each worker process re-computes one contiguous slice of records; the join
checks that each slice starts from the hash the previous one ended with. An
intact chain is then held to the `subjects` table (`subject_check`): every
caller's phone must still be the one its records committed to.
Reads only; never writes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sqlite3
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor, wait
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path

from consent_store.chain import GENESIS_HASH, ChainRow, ChainVerifier, tail_check
from consent_store.events import VerifyResult
from consent_store.subject_check import (
    ERASURE_SQL,
    FIRST_RECORD_SQL,
    MISSING_SUBJECTS_SQL,
    SUBJECT_ROWS_SQL,
    binding_result,
    edited_subjects,
    erased,
    erasure_key,
)

# Below this many records one thread is faster than starting processes.
PARALLEL_FROM = 200_000
_CHUNK = 5000
_SELECT = f"SELECT {', '.join(ChainRow._fields)} FROM events"


Progress = Callable[[int], None]
# In worker processes: a shared count of records checked, set by the pool's initializer.
_checked: Synchronized[int] | None = None


def _init_worker(counter: Synchronized[int]) -> None:
    global _checked
    _checked = counter


def verify_slice(
    path: Path,
    first: int,
    last: int | None,
    anchors: Mapping[int, str],
    prev_hash: str | None,
    progress: Progress | None = None,
) -> tuple[VerifyResult, str | None, int]:
    """Check records first..last; return the result, the first record's prev_hash, records seen."""
    verifier = ChainVerifier(anchors, first_seq=first, prev_hash=prev_hash)
    sql, params = f"{_SELECT} WHERE seq >= ? ORDER BY seq", [first]
    if last is not None:
        sql, params = f"{_SELECT} WHERE seq >= ? AND seq <= ? ORDER BY seq", [first, last]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        cursor = conn.execute(sql, params)
        while batch := cursor.fetchmany(_CHUNK):
            sound = verifier.feed(batch)
            if progress is not None:
                progress(verifier.count)
            elif _checked is not None:
                with _checked.get_lock():
                    _checked.value += len(batch)
            if not sound:
                break
    if verifier.failure is not None:
        return verifier.failure, verifier.first_prev_hash, verifier.count
    return (
        VerifyResult(count=verifier.count, head=verifier.prev_hash),
        verifier.first_prev_hash,
        verifier.count,
    )


def verify_database(
    path: Path,
    anchors: Mapping[int, str],
    warnings: tuple[str, ...] = (),
    parallel_from: int = PARALLEL_FROM,
    workers: int | None = None,
    progress: Progress | None = None,
) -> VerifyResult:
    """The whole chain, in parallel slices when it is long and there are cores to use.

    `progress(records_checked)` is called from time to time, from this thread."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        (top,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
    workers = workers or min(os.cpu_count() or 1, 4)
    if top < parallel_from or workers < 2:
        result, _, _ = verify_slice(path, 1, None, anchors, GENESIS_HASH, progress)
        return _with_warnings(_bound(tail_check(result, anchors), *subject_bindings(path)), warnings)
    step = top // workers + 1
    bounds = [(1 + i * step, (i + 1) * step if i < workers - 1 else None) for i in range(workers)]
    context = multiprocessing.get_context("spawn")  # never fork a process that runs threads
    counter = context.Value("q", 0)
    with ProcessPoolExecutor(
        max_workers=workers + 1, mp_context=context, initializer=_init_worker, initargs=(counter,)
    ) as pool:
        # The phones' bindings are read beside the slices, in a process of their own.
        bindings = pool.submit(subject_bindings, path)
        futures = [
            pool.submit(verify_slice, path, first, last, anchors, GENESIS_HASH if first == 1 else None)
            for first, last in bounds
        ]
        while not all(f.done() for f in futures):
            wait(futures, timeout=0.2)
            if progress is not None:
                progress(counter.value)
        slices = [f.result() for f in futures]
        edited, deleted = bindings.result()
    return _with_warnings(_bound(tail_check(_join(path, bounds, slices), anchors), edited, deleted), warnings)


Binding = tuple[str, int | None]


def subject_bindings(path: Path) -> tuple[list[Binding], list[tuple[str, int]]]:
    """Subjects whose phone was edited, and subjects deleted without a chained erasure, each with
    the first record naming it (see consent_store.subject_check)."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        cursor = conn.execute(SUBJECT_ROWS_SQL)
        edited: list[str] = []
        while batch := cursor.fetchmany(_CHUNK):
            edited += edited_subjects(batch)
        deleted = [
            (str(subject), int(seq))
            for subject, seq in conn.execute(MISSING_SUBJECTS_SQL).fetchall()
            if not erased(subject, conn.execute(ERASURE_SQL, (erasure_key(subject),)).fetchone())
        ]
        first = [(subject, conn.execute(FIRST_RECORD_SQL, (subject,)).fetchone()[0]) for subject in edited]
    return first, deleted


def _bound(result: VerifyResult, edited: list[Binding], deleted: list[tuple[str, int]]) -> VerifyResult:
    """An intact chain's result, or the first record whose caller's phone was edited or deleted."""
    return binding_result(result, edited, deleted) if result.intact else result


def _join(
    path: Path, bounds: list[tuple[int, int | None]], slices: list[tuple[VerifyResult, str | None, int]]
) -> VerifyResult:
    """Chain the slices' results in order, reporting the first break as one pass would."""
    count, head = 0, GENESIS_HASH
    for (first, last), (result, first_prev, seen) in zip(bounds, slices, strict=True):
        if seen and first_prev != head:
            return VerifyResult(
                count=count,
                head=head,
                first_bad_seq=first,
                problem="its previous-hash does not match the record before it",
            )
        if not result.intact:
            return VerifyResult(
                count=count + result.count,
                head=result.head,
                first_bad_seq=result.first_bad_seq,
                problem=result.problem,
            )
        count, head = count + seen, result.head if seen else head
        if last is not None and seen < last - first + 1:
            expected = first + seen
            with contextlib.closing(sqlite3.connect(path)) as conn:
                (found,) = conn.execute("SELECT MIN(seq) FROM events WHERE seq > ?", (expected,)).fetchone()
            if found is not None:
                return VerifyResult(
                    count=count,
                    head=head,
                    first_bad_seq=found,
                    problem=f"expected record {expected} next but found {found} (record missing or inserted)",
                )
            break
    return VerifyResult(count=count, head=head)


def _with_warnings(result: VerifyResult, warnings: tuple[str, ...]) -> VerifyResult:
    return VerifyResult(result.count, result.head, result.first_bad_seq, result.problem, warnings)
