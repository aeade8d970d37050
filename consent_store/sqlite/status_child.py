"""The status writer process's child: `python -m consent_store.sqlite.status_child DATABASE`.

Started by `status_process.StatusWriterProcess` (see there for the protocol); reads frames of
status writes on stdin, commits every frame waiting in one transaction, answers on stdout,
and exits at end of input. Input it cannot read ends it: one line on stderr, exit 1.
"""

from __future__ import annotations

import os
import select
import signal
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path

from consent_store.group_commit import SideWrite
from consent_store.sqlite.status_process import MAX_ITEMS, commit_items, frame, frames, open_lock, write_all
from consent_store.sqlite.writer import PRAGMAS


def serve(database: Path, stdin: int = 0, stdout: int = 1) -> None:
    """The child's loop: read what is waiting, commit it in one transaction, answer; until EOF."""
    conn = sqlite3.connect(database, isolation_level=None)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    lock_fd = open_lock(database)
    buffer = bytearray()
    ended = False
    while not ended:
        items: list[tuple[int, Sequence[SideWrite]]] = []
        # Block for the first frame, then take every frame already waiting, up to MAX_ITEMS.
        while not ended and (not items or select.select([stdin], [], [], 0)[0]) and len(items) < MAX_ITEMS:
            chunk = os.read(stdin, 1 << 20)
            if not chunk:
                ended = True
            buffer += chunk
            for received in frames(buffer):
                items.extend(received)
        if items:
            write_all(stdout, frame(commit_items(conn, items, lock_fd)))
    conn.close()


def main(argv: Sequence[str]) -> int:
    # Ctrl-C or a TERM to the server's process group reaches this child too: the server then
    # closes its end once its statuses in flight are answered, and the end of input ends this.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if len(argv) != 1:
        print("usage: python -m consent_store.sqlite.status_child DATABASE", file=sys.stderr)
        return 2
    try:
        serve(Path(argv[0]))
    except Exception as exc:  # a database it cannot open, or input the parent never sends
        print(f"status writer process: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
