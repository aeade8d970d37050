"""A progress line for long CLI work: shown on a terminal, silent when piped or --quiet."""

from __future__ import annotations

import sys
import time
from typing import TextIO

_WIDTH = 24


class Progress:
    """`update(done)` as work advances; `finish()` at the end. Writes only to a terminal."""

    def __init__(
        self,
        label: str,
        total: int | None,
        *,
        quiet: bool = False,
        stream: TextIO | None = None,
        unit: str = "rows",
    ) -> None:
        self.stream = stream or sys.stderr
        self.enabled = not quiet and self.stream.isatty()
        self.label, self.total, self.unit = label, total, unit
        self.started = time.monotonic()
        self._shown = 0.0
        self.done = 0

    def update(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        if self.enabled and now - self._shown >= 0.1:
            self._shown = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-6)
        rate = self.done / elapsed
        line = f"{self.label}: {self.done:,} {self.unit} {rate:,.0f} {self.unit}/s"
        if self.total:
            share = min(self.done / self.total, 1.0)
            filled = int(share * _WIDTH)
            eta = (self.total - self.done) / rate if rate > 0 else 0.0
            line = (
                f"{self.label}: [{'#' * filled}{'.' * (_WIDTH - filled)}] {share:4.0%} "
                f"{self.done:,}/{self.total:,} {self.unit} {rate:,.0f}/s ETA {eta:,.0f} s"
            )
        self.stream.write(f"\r{line}\x1b[K")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
