"""The worker process where scripts are checked: off the event loop, with a deadline.

The sandbox (voice_scripts.sandbox) bounds every render, but compiling and rendering a script
still costs CPU time, the editor asks for a check as the manager types, and any signed-in
auditor can send any template. So checks run in one worker process per server process
(spawned, at a lower priority, with at most WORKER_MEMORY of address space), one at a time. A
check that takes over LINT_SECONDS is stopped by killing the worker (LintTimeout), and a new
worker starts for the next check. Nothing here knows what a script is: see ivr/scripts_admin.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import ParamSpec, TypeVar
from weakref import WeakKeyDictionary

from ivr.exceptions import LintTimeout

LINT_SECONDS = 2.0
WORKER_MEMORY = 1 << 30  # bytes of address space: a check that wants more fails with MemoryError
WORKER_START_SECONDS = 60.0
PARENT_CHECK_SECONDS = 1.0

P = ParamSpec("P")
T = TypeVar("T")


def _prepare_this_worker() -> None:
    """In the worker, before any check: a lower priority than webhooks, a memory ceiling, and an
    exit when the server process goes (a worker holds its own queue open, so it would wait forever)."""
    import resource

    os.nice(5)
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY, WORKER_MEMORY))
    server = os.getppid()
    threading.Thread(target=_exit_when_orphaned, args=(server,), daemon=True).start()


def _exit_when_orphaned(server: int) -> None:
    while os.getppid() == server:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)


def _warm_up(names: tuple[str, ...]) -> int:
    """In a new worker, before its first check: import each 'module' and call each 'module:function',
    so that no check's deadline counts the worker's imports and first reads of data (on a busy
    machine those alone took over the deadline, and each replacement worker started cold again)."""
    for name in names:
        module, _, function = name.partition(":")
        loaded = importlib.import_module(module)
        if function:
            getattr(loaded, function)()
    return os.getpid()


class LintWorker:
    """One worker process, started on first use and replaced when a check overruns its deadline."""

    def __init__(self, seconds: float = LINT_SECONDS, warm_up: tuple[str, ...] = ()) -> None:
        self.seconds = seconds
        self.warm_up = warm_up
        self._pool: ProcessPoolExecutor | None = None
        self._pid = 0
        # One check at a time, so a deadline never counts time spent queueing behind another.
        self._locks: WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = WeakKeyDictionary()

    async def run(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`function(*args)` in the worker (it must be importable there): LintTimeout past the deadline.

        BrokenProcessPool if the worker died (a new one starts for the next check).
        """
        lock = self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        async with lock:
            pool = await self._started()
            future = pool.submit(function, *args, **kwargs)
            try:
                return await asyncio.wait_for(asyncio.wrap_future(future), self.seconds)
            except TimeoutError:
                self._stop()
                raise LintTimeout(self.seconds) from None
            except (BrokenProcessPool, asyncio.CancelledError):
                # A dead worker, or nobody waiting any more for a check that may still be running.
                self._stop()
                raise

    def close(self) -> None:
        """Stop the worker (a later check starts a new one)."""
        self._stop()

    async def _started(self) -> ProcessPoolExecutor:
        if self._pool is None:
            pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_prepare_this_worker,
            )
            try:
                started = asyncio.wrap_future(pool.submit(_warm_up, self.warm_up))
                pid = await asyncio.wait_for(started, WORKER_START_SECONDS)
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            self._pool, self._pid = pool, pid
        return self._pool

    def _stop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._pid, signal.SIGKILL)
        pool.shutdown(wait=False, cancel_futures=True)


# This process's worker: the editor's live check and publishing use it.
WORKER = LintWorker(warm_up=("ivr.scripts_admin:warm_up",))
