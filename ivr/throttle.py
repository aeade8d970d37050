"""Counting failed sign-ins, so guessing passwords is slow, in memory that cannot grow without bound.

Failures are counted per (user name, client address) pair, per address and per user name. A pair
or an address with too many recent failures is refused for the window; a user name with many
failures from many addresses is only slowed down (a delay, never a lock), so nobody can lock a
real user out from elsewhere. Every table is capped: the oldest entries go first.
The client address is the one uvicorn reports: X-Forwarded-For counts only from the proxies
given to `ivr serve --forwarded-allow-ips`.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass

MAX_PAIR_FAILURES = 5
MAX_ADDRESS_FAILURES = 20
SLOW_USER_FAILURES = 10
SLOW_USER_DELAY_SECONDS = 2.0
FAILURE_WINDOW_SECONDS = 15 * 60
MAX_KEYS = 10_000  # per table: at most ~10k x 5 floats, whatever is sent
MAX_KEY_CHARS = 80


class _Counts:
    """Recent failure times per key, at most MAX_KEYS keys (least recently failed dropped first)."""

    def __init__(self, limit: int) -> None:
        self._times: OrderedDict[str, deque[float]] = OrderedDict()
        self._limit = limit

    def recent(self, key: str, now: float) -> int:
        times = self._times.get(key)
        if times is None:
            return 0
        while times and now - times[0] > FAILURE_WINDOW_SECONDS:
            times.popleft()
        if not times:
            del self._times[key]
            return 0
        return len(times)

    def add(self, key: str, now: float) -> None:
        times = self._times.pop(key, None) or deque(maxlen=self._limit)
        times.append(now)
        self._times[key] = times
        while len(self._times) > MAX_KEYS:
            self._times.popitem(last=False)

    def clear(self, key: str) -> None:
        self._times.pop(key, None)

    def __len__(self) -> int:
        return len(self._times)


@dataclass(frozen=True)
class Verdict:
    refused: bool
    delay_seconds: float = 0.0


class LoginThrottle:
    def __init__(self) -> None:
        self._pairs = _Counts(MAX_PAIR_FAILURES)
        self._addresses = _Counts(MAX_ADDRESS_FAILURES)
        self._users = _Counts(SLOW_USER_FAILURES)

    @staticmethod
    def _keys(user: str, address: str) -> tuple[str, str, str]:
        user, address = user[:MAX_KEY_CHARS], address[:MAX_KEY_CHARS]
        return f"{user}\n{address}", address, user

    def check(self, user: str, address: str) -> Verdict:
        pair, addr, name = self._keys(user, address)
        now = time.monotonic()
        if self._pairs.recent(pair, now) >= MAX_PAIR_FAILURES:
            return Verdict(True)
        if self._addresses.recent(addr, now) >= MAX_ADDRESS_FAILURES:
            return Verdict(True)
        slow = self._users.recent(name, now) >= SLOW_USER_FAILURES
        return Verdict(False, SLOW_USER_DELAY_SECONDS if slow else 0.0)

    def failed(self, user: str, address: str) -> None:
        now = time.monotonic()
        pair, addr, name = self._keys(user, address)
        self._pairs.add(pair, now)
        self._addresses.add(addr, now)
        self._users.add(name, now)

    def succeeded(self, user: str, address: str) -> None:
        pair, _, name = self._keys(user, address)
        self._pairs.clear(pair)
        self._users.clear(name)

    def entries(self) -> int:
        """How many keys are held in all (for tests: it never exceeds 3 * MAX_KEYS)."""
        return len(self._pairs) + len(self._addresses) + len(self._users)
