"""The queue both writers share: callers' appends grouped so that one commit serves many.

One task takes whatever is queued (up to `max_batch`), hands the group to the backend's
`_write_group` (one transaction, all of it or none of it) and settles each caller's
future with its own outcome. It never writes anything itself.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from consent_store.events import NewEvent, StoredEvent
from consent_store.exceptions import StoreError, StoreUnavailable, WithheldCaller
from consent_store.phone import is_withheld

LOG = logging.getLogger(__name__)

# A statement (and its parameters) run in the same transaction as an event, or alone.
SideWrite = tuple[str, tuple[Any, ...]]
# What one queued item became: its stored event (None for side writes alone) or its error.
Outcome = StoredEvent | None | Exception
Group = list[tuple[NewEvent | None, Sequence[SideWrite]]]


@dataclass
class _Pending:
    event: NewEvent | None
    side_writes: Sequence[SideWrite]
    future: asyncio.Future[StoredEvent | None] = field(repr=False)


class GroupCommitQueue(abc.ABC):
    """Subclasses write a group in `_write_group` and start and stop the task around it."""

    def __init__(self, max_batch: int) -> None:
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.commits = 0

    @abc.abstractmethod
    async def _write_group(self, group: Group) -> list[Outcome]:
        """Write the group in one transaction; each item's outcome, in order. Raise: none kept."""

    def _start_queue(self) -> None:
        self._task = asyncio.create_task(self._run(), name="consent-store-writer")

    async def _stop_queue(self) -> None:
        """Let everything queued before now be written, then stop."""
        if self._task is not None:
            await self._queue.put(None)
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def append(self, event: NewEvent, side_writes: Sequence[SideWrite] = ()) -> StoredEvent:
        """Queue an event; return once it is durably committed (or was already).

        `side_writes` run in the same transaction, all or nothing for this event.
        """
        stored = await self._enqueue(event, side_writes)
        assert stored is not None
        return stored

    async def side_write_only(self, side_writes: Sequence[SideWrite]) -> None:
        """Run statements that are not consent events (settings, drafts) through the writer."""
        await self._enqueue(None, side_writes)

    async def _enqueue(self, event: NewEvent | None, side_writes: Sequence[SideWrite]) -> StoredEvent | None:
        if not self.running:
            raise StoreUnavailable("the consent store writer is not running")
        future: asyncio.Future[StoredEvent | None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(event, side_writes, future))
        return await future

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            await self._commit(batch)
            # Let the callers just answered run first: those that append again join the next group.
            await asyncio.sleep(0)

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            results = await self._write_group([(item.event, item.side_writes) for item in batch])
        except Exception as exc:  # any failure (disk, lost connection, failover): nothing of it is kept
            LOG.error("consent store write failed for %d events: %s", len(batch), exc)
            error = exc if isinstance(exc, StoreError) else StoreUnavailable(f"could not write: {exc}")
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(error)
            return
        self.commits += 1
        for item, outcome in zip(batch, results, strict=True):
            if item.future.done():
                continue
            if isinstance(outcome, Exception):
                item.future.set_exception(outcome)
            else:
                item.future.set_result(outcome)


class QueuedStore(abc.ABC):
    """What both stores share: appends and side writes through their writer's queue.

    First in each store's bases, so these take the place of the mixins' declarations.
    """

    _writer: GroupCommitQueue | None

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, upgrade the schema and start the writer."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop the writer (after it wrote what was queued) and close the connections."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _open_writer(self) -> GroupCommitQueue:
        if self._writer is None:
            raise StoreUnavailable("the consent store is not open")
        return self._writer

    async def _append(self, event: NewEvent, side_writes: Sequence[SideWrite] = ()) -> StoredEvent:
        # Every event of both backends passes here: none may bind a record to a withheld caller.
        if event.phone is not None and is_withheld(event.phone):
            raise WithheldCaller(event.phone)
        return await self._open_writer().append(event, side_writes)

    async def _side_writes(self, writes: Sequence[SideWrite]) -> None:
        """Statements that are not consent events, through the single writer."""
        await self._open_writer().side_write_only(writes)

    async def _bulk_side_writes(self, writes: Sequence[SideWrite]) -> None:
        """Side writes that come by the thousand a second (status callbacks) and need no other
        write's outcome: through the single writer here; SQLite gives them a process of its own."""
        await self._side_writes(writes)

    def _start_bulk_side_writes(self, writes: Sequence[SideWrite]) -> asyncio.Future[None]:
        """`_bulk_side_writes` started without awaiting it (no coroutine where the backend's
        writer can take them at once): a future resolved once they are durable."""
        return asyncio.ensure_future(self._bulk_side_writes(writes))
