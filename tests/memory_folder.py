"""/dev/shm for the tests' files and throw-away servers when it has room.

A plain module, not a pytest plugin: tests/conftest.py imports it at start-up, and importing
tests/pg_server.py there (a plugin of the PostgreSQL test files) would keep pytest from
rewriting its asserts (PytestAssertRewriteWarning, an error here).
"""

from __future__ import annotations

import os

# Free space a throw-away server needs in /dev/shm before it goes there (a container's /dev/shm
# is often 64 MB, and PostgreSQL's own shared memory lives there too).
MEMORY_FOLDER_MIN_FREE = 2 * 1024**3


def memory_folder(min_free: int = MEMORY_FOLDER_MIN_FREE) -> str | None:
    """/dev/shm when it has `min_free` bytes free, else None (the usual temporary folder).

    On the ext4 disk of the CI machine a `CREATE DATABASE ... TEMPLATE` took 0.2-0.45 s even with
    fsync off; in memory 0.03 s, and every PostgreSQL-parametrized test makes one."""
    try:
        found = os.statvfs("/dev/shm")
    except OSError:
        return None
    return "/dev/shm" if found.f_bavail * found.f_frsize >= min_free else None
