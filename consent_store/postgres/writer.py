"""The per-process writer of the PostgreSQL backend: one task, events committed in groups.

Every append from this process goes through one queue to one task, which
drains what is waiting (up to MAX_BATCH) and writes it in one transaction.
Several processes share the database: the group goes to the server in one
call of `consent_store_append` (schema version 4, consent_store/schema/v4.py), which locks the
single `chain_head` row, numbers and hashes the events after the head, inserts
them and moves the head, all in one statement and its commit, so the chain
stays one line whoever appends and the lock is never held across a round trip
(only groups carrying other statements, such as a new business, take the lock
first and run those before the append). Each caller awaits its own future,
resolved only after COMMIT returned. It never updates or deletes an event; a
failed group is reported to each of its callers as not recorded, and the next
group takes a fresh connection from the pool.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import secrets
from collections.abc import Callable, Sequence

import asyncpg

from consent_store.bulk_inserts import merged_inserts
from consent_store.chain import canonical_json, text_sha256
from consent_store.events import NewEvent, StoredEvent
from consent_store.exceptions import ConflictingWrite, StoreUnavailable
from consent_store.group_commit import Group, GroupCommitQueue, Outcome, SideWrite
from consent_store.writing import CHECKPOINT_EVERY, MAX_BATCH, subject_commitment

LOG = logging.getLogger(__name__)

# What a lost, refused or stalled connection raises: reported as StoreUnavailable.
PG_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)
# Seconds to wait for a pooled connection before a write is reported as failed.
ACQUIRE_TIMEOUT = 10.0


@functools.lru_cache(maxsize=1024)
def pg_sql(sql: str) -> str:
    """The store's `?` placeholders as PostgreSQL's `$1, $2, ...` (never inside '...' literals)."""
    parts = sql.split("'")
    number = 0
    for index in range(0, len(parts), 2):
        pieces = parts[index].split("?")
        text = pieces[0]
        for piece in pieces[1:]:
            number += 1
            text += f"${number}{piece}"
        parts[index] = text
    return "'".join(parts)


_APPEND = "SELECT * FROM consent_store_append(" + ", ".join(f"${n}" for n in range(1, 15)) + ")"

# None in service: `recorded_at` is the database server's clock, read under the chain lock.
# Tests that build histories spanning months set it (a callable giving the store's time text).
record_clock: Callable[[], str] | None = None


def body_prefix(event: NewEvent) -> str:
    """The event's canonical body up to the keys only the database knows, ending in a comma.

    `consent_store_append` (schema version 4, consent_store/schema/v4.py) adds `"recorded_at":...,"seq":...,
    "subject":...}`: those three sort after every other key, so prefix and suffix make
    exactly the body `chain_event` builds (a test holds the two to it)."""
    head = canonical_json(
        {
            "kind": event.kind,
            "key": event.idempotency_key,
            "call_sid": event.call_sid,
            "business": event.business,
            "data": dict(event.fields),
        }
    )
    return head[:-1] + ","


class PostgresWriter(GroupCommitQueue):
    """This process's only appender; the database lock orders it with other processes' writers."""

    def __init__(self, pool: asyncpg.Pool, max_batch: int = MAX_BATCH) -> None:
        super().__init__(max_batch)
        self._pool = pool

    async def start(self) -> None:
        self._start_queue()

    async def stop(self) -> None:
        await self._stop_queue()

    async def _write_group(self, group: Group) -> list[Outcome]:
        async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
            return await _write(conn, group)


async def _write(conn: asyncpg.Connection, batch: Group) -> list[Outcome]:
    """One group in one transaction; each item's outcome, in the group's order."""
    if not any(side_writes for _, side_writes in batch):
        # The usual group, events only: one statement in its own transaction, one round trip.
        events = [event for event, _ in batch]
        return _resolve(events, await _append_events(conn, events))
    if not any(event is not None for event, _ in batch):  # statements alone: status callbacks
        merged = merged_inserts([side_writes for _, side_writes in batch])
        if merged is not None:
            try:
                async with conn.transaction():
                    for sql, params in merged:
                        await conn.execute(pg_sql(sql), *params)
                return [None] * len(batch)
            except asyncpg.IntegrityConstraintViolationError:
                pass  # nothing of it kept: item by item below, so one bad item fails alone
    async with conn.transaction():
        return await _write_with_side_writes(conn, batch)


async def _write_with_side_writes(conn: asyncpg.Connection, batch: Group) -> list[Outcome]:
    """A group carrying other statements (a new business, a setting): they run first, under the lock.

    Rare (changes made by people, health probes), so this may hold the lock for a few round
    trips. An item whose event is already stored runs none of its statements."""
    keys = [event.idempotency_key for event, _ in batch if event is not None]
    seen: set[str] = set()
    if keys:
        # As the append does, and before the lock (see consent_store/schema/v4.py).
        await conn.execute(
            "SELECT consent_store_add_subjects_and_texts($1, $2, $3, $4, $5)",
            *_subjects_and_texts([event for event, _ in batch]),
        )
        # The append lock, taken first: a key found missing here is still missing at the append.
        await conn.execute("SELECT 1 FROM chain_head WHERE id = 1 FOR UPDATE")
        seen = set(await _existing_keys(conn, keys))
    events: list[NewEvent | None] = []
    failures: list[Exception | None] = []
    for event, side_writes in batch:
        if event is not None and event.idempotency_key in seen:
            events.append(event)  # answered with the stored (or earlier) event, marked duplicate
            failures.append(None)
            continue
        failure = await _side_writes(conn, side_writes)
        events.append(event if failure is None else None)
        failures.append(failure)
        if event is not None and failure is None:
            seen.add(event.idempotency_key)
    outcomes = _resolve(events, await _append_events(conn, events))
    return [
        outcome if failure is None else failure for outcome, failure in zip(outcomes, failures, strict=True)
    ]


async def _append_events(
    conn: asyncpg.Connection, events: Sequence[NewEvent | None]
) -> dict[str, StoredEvent]:
    """Append the events not stored yet with one call of `consent_store_append`; each key's stored event."""
    unique: dict[str, NewEvent] = {}
    for event in events:
        if event is not None:
            unique.setdefault(event.idempotency_key, event)
    if not unique:
        return {}
    wanted = list(unique.values())
    rows = await conn.fetch(
        _APPEND,
        list(unique),
        [event.kind for event in wanted],
        [event.call_sid for event in wanted],
        [event.business for event in wanted],
        [event.action for event in wanted],
        [body_prefix(event) for event in wanted],
        [event.phone or None for event in wanted],
        *_subjects_and_texts(wanted),
        CHECKPOINT_EVERY,
        None if record_clock is None else [record_clock() for _ in wanted],
    )
    return {
        row[0]: StoredEvent(row[1], row[2], row[3], row[4], row[5], row[6], duplicate=row[7]) for row in rows
    }


def _subjects_and_texts(events: Sequence[NewEvent | None]) -> tuple[list[str], ...]:
    """The arguments of `consent_store_add_subjects_and_texts`: candidate subjects, spoken texts.

    Sorted, so that two appenders inserting the same rows take their locks in one order."""
    phones = sorted({event.phone for event in events if event is not None and event.phone})
    salts = [secrets.token_hex(16) for _ in phones]
    subjects = [subject_commitment(salt, phone) for salt, phone in zip(salts, phones, strict=True)]
    texts = sorted(
        {
            text_sha256(e.spoken_text): e.spoken_text
            for e in events
            if e is not None and e.spoken_text is not None
        }.items()
    )
    return phones, subjects, salts, [sha for sha, _ in texts], [text for _, text in texts]


def _resolve(events: Sequence[NewEvent | None], stored: dict[str, StoredEvent]) -> list[Outcome]:
    """Each item's stored event; a key's later items in the group get it marked duplicate."""
    outcomes: list[Outcome] = []
    answered: set[str] = set()
    for event in events:
        if event is None:
            outcomes.append(None)
            continue
        key = event.idempotency_key
        found = stored.get(key)
        if found is None:
            outcomes.append(StoreUnavailable(f"the database returned no record for event {key!r}"))
        elif key in answered and not found.duplicate:
            outcomes.append(dataclasses.replace(found, duplicate=True))
        else:
            outcomes.append(found)
        answered.add(key)
    return outcomes


async def _side_writes(conn: asyncpg.Connection, writes: Sequence[SideWrite]) -> Exception | None:
    """One item's extra statements under a savepoint: all of them or none."""
    if not writes:
        return None
    try:
        async with conn.transaction():
            for sql, params in writes:
                await conn.execute(pg_sql(sql), *params)
    except asyncpg.IntegrityConstraintViolationError as exc:
        return ConflictingWrite(str(exc))
    return None


async def _existing_keys(conn: asyncpg.Connection, keys: list[str]) -> list[str]:
    rows = await conn.fetch(
        "SELECT idempotency_key FROM events WHERE idempotency_key = ANY($1::text[])", keys
    )
    return [row[0] for row in rows]
