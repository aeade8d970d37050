"""Run the `ivr` command inside the test process: what `python -m ivr ARGS` would print and exit with,
without a new interpreter's ~0.5 s of imports per call.

`run_ivr(*args, env=..., cwd=..., stdin=...)` calls `ivr.cli.main.main(list(args))` with

- the environment of the call: this process's, minus every variable starting with one of `drop`
  (default `IVR_`), plus `env`; restored afterwards;
- standard output and error captured as bytes (text and `sys.stdout.buffer` writes alike) and decoded
  as `subprocess.run(..., text=True)` decodes them (UTF-8, universal newlines); neither is a terminal;
- standard input a real file holding `stdin` (empty when None), so `isatty`, `fileno` and `select` work;
- the exit code from `SystemExit` (an uncaught exception prints its traceback and gives 1, as the
  interpreter does);
- the root logger as a fresh interpreter has it (no handlers, WARNING, so warnings reach the captured
  standard error; beside a running loop only this thread's warnings do, the test's handlers stay)
  and every logger's level put back afterwards (`main` and `ivr call` set some).

The result is a `subprocess.CompletedProcess[str]` (plus `stdout_bytes`), so assertions written
for the process stay as they are. Calls take a lock: the environment, streams and directory are
the process's, so two commands never run at once (tests whose point is several processes at once
keep real processes). Called from the main thread with no event loop running (a sync test), it also
stops what the process's exit would (the script lint worker), then checks that the command left no
thread running and no signal handler changed, and fails if it did.
From an async test, run it off the loop: `await asyncio.to_thread(run_ivr, ...)` (commands call
`asyncio.run`); called straight from a running loop it runs in a thread of its own while the loop
waits, as it waited for `subprocess.run`. The thread check is skipped off the main thread, as the
test's own server may start threads meanwhile.

What stays a real process (`python -m ivr`): signals, the interpreter's entry point and start-up
(`--version`, what is imported), crashes and recovery, several writers at once, `ivr serve`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import io
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from types import FrameType
from typing import Any

_LOCK = threading.Lock()
_SIGNALS: tuple[signal.Signals, ...] = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGPIPE,
    signal.SIGCHLD,
    signal.SIGALRM,
)
_Handler = Callable[[int, FrameType | None], Any] | int | None
_LEAK_GRACE_SECONDS = 5.0  # an aiosqlite or executor thread may still be finishing after its close


class Result(subprocess.CompletedProcess[str]):
    """A finished in-process `ivr` call, shaped like `subprocess.run(..., text=True)`'s result."""

    def __init__(self, args: list[str], returncode: int, stdout: bytes, stderr: bytes) -> None:
        super().__init__(["ivr", *args], returncode, _as_text(stdout), _as_text(stderr))
        self.stdout_bytes = stdout
        self.stderr_bytes = stderr


def _as_text(data: bytes) -> str:
    """As `subprocess.run(text=True)` reads a pipe: decoded, with \\r\\n and \\r turned into \\n."""
    return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")


def run_ivr(
    *args: str,
    env: Mapping[str, str] | None = None,
    drop: tuple[str, ...] = ("IVR_",),
    cwd: str | os.PathLike[str] | None = None,
    stdin: str | bytes | None = None,
) -> Result:
    """Run `ivr ARGS` in this process; see the module docstring for what is isolated and checked."""
    if _loop_running():
        # Called straight from an async test: run beside its loop, which waits for the call as it
        # waited for `subprocess.run` (commands call `asyncio.run`, which refuses a running loop).
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="run_ivr") as pool:
            return pool.submit(run_ivr, *args, env=env, drop=drop, cwd=cwd, stdin=stdin).result()
    from ivr.cli.main import main  # imported once per test process, not per call

    strict = threading.current_thread() is threading.main_thread() and not _loop_running()
    with _LOCK:
        threads_before = set(threading.enumerate())
        handlers_before = {s: signal.getsignal(s) for s in _SIGNALS} if strict else {}
        out, err = _Captured("strict"), _Captured("backslashreplace")
        code = 0
        with (
            _environment(env or {}, drop),
            _directory(cwd),
            _streams(out.stream, err.stream, stdin),
            _fresh_logging(err.stream, only_this_thread=not strict),
        ):
            try:
                main(list(args))
            except SystemExit as exc:
                code = _exit_code(exc, err.stream)
            except Exception:  # as the interpreter does with an uncaught exception
                traceback.print_exc(file=err.stream)
                code = 1
        result = Result(list(args), code, out.value(), err.value())
        if strict:
            _as_at_exit()
            _check_nothing_leaked(threads_before, handlers_before, result)
    return result


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _exit_code(exc: SystemExit, stderr: io.TextIOWrapper) -> int:
    """The process's exit status for `sys.exit(value)`."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=stderr)
    return 1


class _Captured:
    """A text stream over bytes, like a pipe's: `.buffer` takes binary writes."""

    def __init__(self, errors: str) -> None:
        self.raw = io.BytesIO()
        self.stream = io.TextIOWrapper(self.raw, encoding="utf-8", errors=errors, write_through=True)

    def value(self) -> bytes:
        self.stream.flush()
        return self.raw.getvalue()


@contextlib.contextmanager
def _environment(env: Mapping[str, str], drop: tuple[str, ...]) -> Iterator[None]:
    saved = dict(os.environ)
    wanted = {k: v for k, v in saved.items() if not k.startswith(drop)} | dict(env)
    for key in saved.keys() - wanted.keys():
        del os.environ[key]
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key in os.environ.keys() - saved.keys():
            del os.environ[key]
        os.environ.update(saved)


@contextlib.contextmanager
def _directory(cwd: str | os.PathLike[str] | None) -> Iterator[None]:
    if cwd is None:
        yield
        return
    before = os.getcwd()
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(before)


@contextlib.contextmanager
def _streams(stdout: io.TextIOWrapper, stderr: io.TextIOWrapper, stdin: str | bytes | None) -> Iterator[None]:
    data = stdin.encode("utf-8") if isinstance(stdin, str) else (stdin or b"")
    with tempfile.TemporaryFile() as raw:
        raw.write(data)
        raw.seek(0)
        text_in = io.TextIOWrapper(raw, encoding="utf-8")
        saved = sys.stdin, sys.stdout, sys.stderr
        sys.stdin, sys.stdout, sys.stderr = text_in, stdout, stderr
        try:
            yield
        finally:
            sys.stdin, sys.stdout, sys.stderr = saved
            text_in.detach()


@contextlib.contextmanager
def _fresh_logging(stderr: io.TextIOWrapper, only_this_thread: bool) -> Iterator[None]:
    """The root logger as a new interpreter has it (warnings on standard error); every logger's
    settings put back afterwards. Beside a test's running loop (`only_this_thread`), its own
    handlers stay and only this thread's warnings reach the captured standard error, so the
    test's in-process server logs where it did and not into the command's output."""
    root = logging.getLogger()
    manager = logging.Logger.manager
    saved = {
        name: (logger.level, list(logger.handlers), logger.propagate, logger.disabled)
        for name, logger in manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    root_saved = root.level, list(root.handlers)
    if only_this_thread:
        mine = logging.StreamHandler(stderr)  # what logging.lastResort would write, from this thread
        mine.setLevel(logging.WARNING)
        ident = threading.get_ident()
        mine.addFilter(lambda record: record.thread == ident)
        root.addHandler(mine)
    else:
        root.handlers, root.level = [], logging.WARNING
    try:
        yield
    finally:
        root.level, root.handlers = root_saved[0], root_saved[1]
        for name, logger in list(manager.loggerDict.items()):
            if not isinstance(logger, logging.Logger):
                continue
            level, handlers, propagate, disabled = saved.get(name, (logging.NOTSET, [], True, False))
            for handler in logger.handlers:
                if handler not in handlers:
                    handler.close()
            logger.setLevel(level)
            logger.handlers, logger.propagate, logger.disabled = handlers, propagate, disabled


def _as_at_exit() -> None:
    """What the process's exit would end: the script lint worker a publish started (ivr/lint_worker.py)."""
    lint_worker = sys.modules.get("ivr.lint_worker")
    if lint_worker is not None:
        lint_worker.WORKER.close()


def _check_nothing_leaked(
    threads_before: set[threading.Thread], handlers_before: dict[signal.Signals, _Handler], result: Result
) -> None:
    """Fail the test when the command left a thread running or a signal handler changed."""
    changed = [s for s, handler in handlers_before.items() if signal.getsignal(s) != handler]
    for s in changed:
        signal.signal(s, handlers_before[s])
    left = [t for t in threading.enumerate() if t not in threads_before]
    for thread in left:
        thread.join(_LEAK_GRACE_SECONDS)
    alive = [t.name for t in left if t.is_alive()]
    assert not changed and not alive, (
        f"`ivr {' '.join(map(str, result.args[1:]))}` left signal handlers {changed} changed and threads "
        f"{alive} running; stderr: {result.stderr}"
    )


def ivr_with_env(env: Mapping[str, str], *args: str, stdin: str | None = None) -> Result:
    """`ivr(env, *args)` of tests/live_server.py in-process: `env` is the call's whole environment."""
    return run_ivr(*args, env=env, drop=("",), stdin=stdin)
