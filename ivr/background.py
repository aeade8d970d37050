"""A task that runs beside the app for as long as a block lasts, cancelled and awaited at its end.

The catalog watcher, the opt-out notifier, the recording fetcher and the recordings reconciler
each run one; a task must never outlive the store or HTTP client it uses, so it is awaited
before they close.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any


@contextlib.asynccontextmanager
async def running_task(work: Coroutine[Any, Any, object], name: str) -> AsyncIterator[asyncio.Task[object]]:
    """Run `work` as a task named `name` while the block runs; cancel it and wait for it after."""
    task: asyncio.Task[object] = asyncio.create_task(work, name=name)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
