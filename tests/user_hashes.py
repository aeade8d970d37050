"""Password hashes for the users a test adds straight into the store: argon2id at a test cost.

The service checks a password against the parameters written in the stored hash (argon2's encoded
form carries its own memory and time cost), so a user added with `quick_hash` signs in through the
service's own check, unchanged, in about a millisecond instead of ~0.15 s of a core and 64 MiB; each
password is hashed once per process. The 23 test files that add users spent more than half their
time in argon2 at the production cost (183 s -> 83 s of summed test time with this). Users made through
the service (`ivr user add`, the users page, `ivr user passwd`) still get the production cost, as does
the check of a name that does not exist.
"""

from __future__ import annotations

import functools

from argon2 import PasswordHasher

# The lowest cost argon2-cffi accepts for one lane, and well-formed argon2id all the same.
_TEST_COST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@functools.cache
def quick_hash(password: str) -> str:
    """An argon2id hash of `password` that the service's password check accepts, made cheaply."""
    return _TEST_COST.hash(password)
