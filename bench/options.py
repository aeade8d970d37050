"""Argument types (argparse `type=` callables) and options the benchmarks share."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def positive_int(text: str) -> int:
    """A whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def positive_float(text: str) -> float:
    """A number above 0."""
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be above 0")
    return value


def add_count(
    parser: argparse._ActionsContainer,
    flag: str,
    default: float,
    help: str,
    *,
    kind: Callable[[str], float] = positive_int,
    metavar: str | None = None,
) -> None:
    """An option taking a positive number (`kind`), its help ending with its default: `(default N)`."""
    parser.add_argument(flag, type=kind, default=default, metavar=metavar, help=f"{help} (default {default})")


def add_seed_and_dir(parser: argparse.ArgumentParser, files: str) -> None:
    """--dir, where the run's temporary `files` go, and --seed, of the generated calls."""
    parser.add_argument(
        "--dir", type=Path, default=None, help=f"where the temporary {files} go (default: system temp)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated calls (default 1)")
