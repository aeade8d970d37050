"""Counting failed sign-ins, so guessing passwords is slow."""

from __future__ import annotations

import time
from collections import defaultdict, deque

MAX_FAILURES = 5
FAILURE_WINDOW_SECONDS = 15 * 60


class LoginThrottle:
    """At most MAX_FAILURES failed logins per user name and per client address in the window."""

    def __init__(self) -> None:
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def _recent(self, key: str) -> deque[float]:
        failures = self._failures[key]
        while failures and time.monotonic() - failures[0] > FAILURE_WINDOW_SECONDS:
            failures.popleft()
        return failures

    def locked(self, *keys: str) -> bool:
        return any(len(self._recent(k)) >= MAX_FAILURES for k in keys)

    def failed(self, *keys: str) -> None:
        for key in keys:
            self._recent(key).append(time.monotonic())

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._failures.pop(key, None)
