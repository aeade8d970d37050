"""Summarise a py-spy profile of `ivr serve` per webhook: `python -m bench.profile_report FILE`.

FILE is what `python -m bench load --py-spy FILE` records (py-spy `--format raw --threads`: one
line per distinct stack, `thread (tid): name;frame;frame;... count`, frames `function (file:line)`).
py-spy samples each thread `--rate` times a second and keeps the samples where the thread was
running (not waiting in epoll, on a lock or in a blocking read), so samples / rate is the time a
thread was busy. With `--requests N` (requests of each webhook during the recording) the report
also gives microseconds of event-loop time per request.

What it prints:
- per thread: busy seconds (the event loop, aiosqlite's reader thread, the consent writer);
- the event-loop thread split into the four webhook handlers and what runs around them (uvicorn's
  HTTP protocol, Starlette's middleware, logging, asyncio/uvloop callbacks);
- per webhook, the call tree below the handler down to `--depth` levels, every node with at
  least `--min-share` of the handler's samples, with the line numbers folded away.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HANDLERS = {
    "voice": "voice",
    "gather": "decision (gather)",
    "recording_status": "recording",
    "call_status": "status",
}
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# Where event-loop time outside the handlers goes, by the first matching frame file (outermost first).
AROUND = (
    ("logging (uvicorn access log, ivr/consent_store INFO lines)", ("logging/", "uvicorn/logging.py")),
    ("uvicorn HTTP protocol (httptools parsing, responses)", ("uvicorn/protocols/",)),
    ("Starlette middleware, routing, Request/Response", ("starlette/",)),
    ("aiosqlite futures and thread hand-offs", ("aiosqlite/",)),
    ("consent store writer task (event loop side)", ("consent_store/sqlite/writer.py",)),
    ("asyncio / uvloop internals", ("asyncio/", "uvloop/", "<frozen")),
)


def frame_name(frame: str) -> tuple[str, str]:
    """(function, file) of a py-spy frame, without the line number."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip(), ""
    return match["func"], match["file"]


def fold(frame: str) -> str:
    func, file = frame_name(frame)
    return f"{func} ({file})" if file else func


@dataclass
class Node:
    samples: int = 0
    children: dict[str, Node] = field(default_factory=dict)

    def add(self, path: Sequence[str], count: int) -> None:
        self.samples += count
        if path:
            self.children.setdefault(path[0], Node()).add(path[1:], count)


@dataclass
class Profile:
    threads: Counter[str] = field(default_factory=Counter)
    handlers: dict[str, Node] = field(default_factory=lambda: defaultdict(Node))
    around: Counter[str] = field(default_factory=Counter)
    leaves: Counter[str] = field(default_factory=Counter)
    other_leaves: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    main: int = 0


def read_profile(lines: Iterable[str]) -> Profile:
    profile = Profile()
    for raw in lines:
        raw = raw.rstrip("\n")
        if not raw.strip():
            continue
        stack, _, number = raw.rpartition(" ")
        try:
            count = int(number)
        except ValueError:
            continue
        frames = stack.split(";")
        thread = re.sub(r"^thread \(\d+\): ", "", frames[0])
        thread = re.sub(r"_\d+$|-\d+ ", " ", thread).strip()
        profile.threads[thread] += count
        if thread != "MainThread":
            # The innermost two frames, with their lines, say what it was doing (e.g. COMMIT).
            profile.other_leaves[thread][" <- ".join(f.strip() for f in reversed(frames[-2:]))] += count
            continue
        profile.main += count
        body = frames[1:]
        if body:
            profile.leaves[fold(body[-1])] += count
        for index, frame in enumerate(body):
            func, file = frame_name(frame)
            if file == "ivr/twilio/webhooks.py" and func in HANDLERS:
                profile.handlers[func].add([fold(f) for f in body[index + 1 :]], count)
                break
        else:
            files = [frame_name(f)[1] for f in body]
            profile.around[_around(files)] += count
    return profile


def _around(files: Sequence[str]) -> str:
    for label, prefixes in AROUND:
        if any(any(p in file for p in prefixes) for file in reversed(files)):
            return label
    return "other (not under a handler)"


def print_tree(
    node: Node, total: int, depth: int, min_share: float, indent: int, us_per_sample: float | None
) -> None:
    if depth == 0:
        return
    for name, child in sorted(node.children.items(), key=lambda item: -item[1].samples):
        share = child.samples / total
        if share < min_share:
            continue
        cost = f" {child.samples * us_per_sample:7.0f} µs/req" if us_per_sample is not None else ""
        print(f"    {'  ' * indent}{100 * share:5.1f}%{cost}  {name}")
        print_tree(child, total, depth - 1, min_share, indent + 1, us_per_sample)


def report(profile: Profile, rate: float, requests: int | None, depth: int, min_share: float) -> None:
    total = sum(profile.threads.values())
    print(f"py-spy samples: {total:,} at {rate:g}/s (busy time only)")
    print("busy time per thread:")
    for thread, samples in profile.threads.most_common():
        print(f"  {thread:<45} {samples / rate:8.2f} s  ({samples:,} samples)")
    print()
    main = profile.main
    print("event-loop thread (MainThread):")
    for func, node in sorted(profile.handlers.items(), key=lambda item: -item[1].samples):
        per = f"  {node.samples / rate / requests * 1e6:6.0f} µs/request" if requests else ""
        where = f"ivr.twilio.webhooks.{func}"
        print(f"  {100 * node.samples / main:5.1f}%  {HANDLERS[func]} handler ({where}){per}")
    for label, samples in profile.around.most_common():
        per = f"  {samples / rate / (4 * requests) * 1e6:6.0f} µs/request" if requests else ""
        print(f"  {100 * samples / main:5.1f}%  {label}{per}")
    print()
    for func, node in sorted(profile.handlers.items(), key=lambda item: -item[1].samples):
        share = 100 * node.samples / main
        print(f"{HANDLERS[func]} handler ({node.samples:,} samples, {share:.1f}% of the loop):")
        us = 1e6 / rate / requests if requests else None
        print_tree(node, node.samples, depth, min_share, 0, us)
        print()
    print("top leaf frames of the event-loop thread (self time):")
    for name, samples in profile.leaves.most_common(15):
        print(f"  {100 * samples / main:5.1f}%  {name}")
    for thread, leaves in profile.other_leaves.items():
        busy = profile.threads[thread]
        print()
        print(f"thread {thread}: {busy / rate:.2f} s busy; innermost frames:")
        for name, samples in leaves.most_common(6):
            print(f"  {100 * samples / busy:5.1f}%  {samples / rate:6.2f} s  {name}")


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile_report", description=__doc__.split("\n")[0]
    )
    parser.add_argument("file", type=Path, help="py-spy raw output (python -m bench load --py-spy FILE)")
    parser.add_argument("--rate", type=float, default=250, help="py-spy sampling rate (bench load uses 250)")
    parser.add_argument("--requests", type=int, default=None, help="requests of each webhook while recording")
    parser.add_argument("--depth", type=int, default=4, help="levels of the call tree below each handler")
    parser.add_argument(
        "--min-share", type=float, default=0.03, help="smallest node shown (share of handler)"
    )
    args = parser.parse_args(list(argv))
    with args.file.open() as lines:
        profile = read_profile(lines)
    report(profile, args.rate, args.requests, args.depth, args.min_share)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
