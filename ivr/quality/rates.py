"""A count as a share of a total, and how a share is shown: one rule for the call and the delivery figures.

Pure functions, no I/O.
"""

from __future__ import annotations


def rate(part: int, whole: int) -> float | None:
    """`part / whole`, or None when there is nothing to divide by."""
    return None if whole == 0 else part / whole


def percent(value: float | None) -> str:
    """A rate for a terminal table: one decimal percent, "-" when there is none."""
    return "-" if value is None else f"{value:.1%}"
