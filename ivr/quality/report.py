"""Opt-in quality: the store's figures as rows with rates, the flags, and CSV / JSON / text renderings.

Pure functions of `QualityFigures`: no I/O, so the CLI, the page and the CSV show the
same numbers. A flag is a rule, not a verdict: every flag carries both counts.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from consent_store import ConsentStore
from consent_store.stats import FrequencyChange, QualityFigures, ScriptFigures
from ivr.quality.delivery import COMPARED as DELIVERY_COMPARED
from ivr.quality.delivery import DELIVERY_COLUMNS, delivery_row, delivery_table
from ivr.quality.rates import percent, rate
from voice_scripts import ScriptError, parse_script

# A script version is flagged when its rate is this much worse than the previous version's
# (in proportion, 0.05 = 5 percentage points) and a two-proportion z-test gives p below P_LIMIT.
MIN_DIFFERENCE = 0.05
P_LIMIT = 0.05

COLUMNS = (
    "locale",
    "script_version",
    "calls",
    "answered",
    "unanswered",
    "opt_in",
    "declined",
    "opt_out",
    "hung_up",
    "no_input",
    "undecided",
    "opt_in_rate",
    "declined_rate",
    "opt_out_rate",
    "hung_up_rate",
    "no_input_rate",
    "undecided_rate",
    "prompts_heard",
    "prompts_per_call",
    "median_s_to_decision",
    "median_duration_s",
    "followed_7d",
    "opted_out_7d",
    "opted_out_7d_rate",
    "followed_30d",
    "opted_out_30d",
    "opted_out_30d_rate",
)

# What became of an answered call: a ScriptFigures count each, shown with its share of the
# answered calls (the `<outcome>_rate` columns).
OUTCOMES = ("opt_in", "declined", "opt_out", "hung_up", "no_input", "undecided")


@dataclass(frozen=True)
class Flag:
    """Something a manager should look at, with the counts to judge it."""

    kind: str  # "hung_up_rate", "opted_out_30d_rate", "message_types_changed" or "frequency_changed"
    message: str
    locale: str | None = None
    script_version: int | None = None
    previous_version: int | None = None
    count: int = 0
    total: int = 0
    previous_count: int = 0
    previous_total: int = 0
    p_value: float | None = None


def two_proportion_p(x1: int, n1: int, x2: int, n2: int) -> float | None:
    """Two-sided p-value of a pooled two-proportion z-test (None when it cannot be computed)."""
    if n1 == 0 or n2 == 0:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        return None
    z = (x1 / n1 - x2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return math.erfc(abs(z) / math.sqrt(2))


def figure_row(s: ScriptFigures) -> dict[str, Any]:
    """One script version and locale as a flat row, keyed by COLUMNS."""
    answered = s.answered
    outcomes: dict[str, int] = {name: getattr(s, name) for name in OUTCOMES}
    return {
        "locale": s.locale,
        "script_version": s.script_version,
        "calls": s.calls,
        "answered": answered,
        "unanswered": s.unanswered,
        **outcomes,
        **{f"{name}_rate": rate(count, answered) for name, count in outcomes.items()},
        "prompts_heard": s.prompts_heard,
        "prompts_per_call": s.prompts_per_call,
        "median_s_to_decision": s.median_seconds_to_decision,
        "median_duration_s": s.median_duration,
        "followed_7d": s.followed_7d,
        "opted_out_7d": s.opted_out_7d,
        "opted_out_7d_rate": rate(s.opted_out_7d, s.followed_7d),
        "followed_30d": s.followed_30d,
        "opted_out_30d": s.opted_out_30d,
        "opted_out_30d_rate": rate(s.opted_out_30d, s.followed_30d),
    }


# metric -> (what it is called, count, total)
_COMPARED: dict[str, tuple[str, Callable[[Any], tuple[int, int]]]] = {
    "hung_up_rate": ("hang-up rate", lambda s: (s.hung_up, s.answered)),
    "opted_out_30d_rate": ("30-day opt-out rate", lambda s: (s.opted_out_30d, s.followed_30d)),
}


def _worse_than_before(
    items: Sequence[Any], compared: dict[str, tuple[str, Callable[[Any], tuple[int, int]]]]
) -> list[Flag]:
    """Versions whose rate is clearly worse than the previous version of the same locale."""
    flags: list[Flag] = []
    by_locale: dict[str, list[Any]] = {}
    for s in items:
        if s.locale is not None and s.script_version is not None:
            by_locale.setdefault(s.locale, []).append(s)
    for locale, versions in sorted(by_locale.items()):
        versions.sort(key=lambda s: s.script_version or 0)
        for kind, (label, counts) in compared.items():
            # Compare with the nearest earlier version that has something to compare.
            earlier = [v for v in versions if counts(v)[1] > 0]
            for before, after in zip(earlier, earlier[1:], strict=False):
                (x2, n2), (x1, n1) = counts(before), counts(after)
                p = two_proportion_p(x1, n1, x2, n2)
                if x1 / n1 - x2 / n2 > MIN_DIFFERENCE and p is not None and p < P_LIMIT:
                    flags.append(
                        Flag(
                            kind,
                            f"{locale} version {after.script_version}: {label} {x1}/{n1} ({x1 / n1:.1%})"
                            f" vs version {before.script_version} {x2}/{n2} ({x2 / n2:.1%}), p = {p:.3g}",
                            locale,
                            after.script_version,
                            before.script_version,
                            x1,
                            n1,
                            x2,
                            n2,
                            p,
                        )
                    )
    return flags


def quality_flags(figures: QualityFigures) -> list[Flag]:
    """Versions clearly worse than the previous version of the same locale; stale opt-ins."""
    flags = _worse_than_before(figures.scripts, _COMPARED)
    flags += _worse_than_before(figures.delivery, DELIVERY_COMPARED)
    for moved in figures.frequency_changes:
        if moved.opted_in_before > 0:
            flags.append(
                Flag(
                    "frequency_changed",
                    f"{moved.locale} version {moved.version} ({moved.recorded_at[:10]}) promises "
                    f"{moved.frequency!r} instead of {moved.previous!r}; {moved.opted_in_before} caller(s) "
                    "currently opted in agreed to the old promise and have not opted in again",
                    moved.locale,
                    moved.version,
                    count=moved.opted_in_before,
                )
            )
    change = figures.message_types_change
    if change is not None and change.opted_in_before > 0:
        flags.append(
            Flag(
                "message_types_changed",
                f"message types changed on {change.recorded_at[:10]} to {'; '.join(change.message_types)};"
                f" {change.opted_in_before} caller(s) currently opted in agreed before that change"
                " and have not opted in again",
                count=change.opted_in_before,
            )
        )
    return flags


def _cell(value: Any, column: str) -> str:
    if value is None:
        return ""
    if column in ("median_duration_s", "median_s_to_decision"):
        return f"{value:g}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def quality_csv(figures: QualityFigures) -> str:
    """The figures as CSV (one row per script version and locale), RFC 4180, CRLF."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(("business", *COLUMNS, *DELIVERY_COLUMNS))
    # The business name comes from outside: neutralise a leading formula character.
    name = figures.business
    if name[:1] in ("=", "+", "-", "@", "\t", "\r", "'"):
        name = "'" + name
    delivery = {
        (d.locale, d.script_version): delivery_row(d) for d in figures.delivery if d.locale is not None
    }
    for s in figures.scripts:
        row = figure_row(s)
        sent = delivery.pop((s.locale, s.script_version), {}) if s.locale is not None else {}
        writer.writerow(
            (name, *(_cell(row[c], c) for c in COLUMNS), *(_cell(sent.get(c), c) for c in DELIVERY_COLUMNS))
        )
    # Versions with messages but no calls in the range, and messages sent with no opt-in in force.
    rest = [*delivery.values(), *(delivery_row(d) for d in figures.delivery if d.locale is None)]
    for sent in rest:
        calls = {"locale": sent["locale"], "script_version": sent["script_version"]}
        writer.writerow(
            (name, *(_cell(calls.get(c), c) for c in COLUMNS), *(_cell(sent[c], c) for c in DELIVERY_COLUMNS))
        )
    return out.getvalue()


def quality_json(figures: QualityFigures) -> dict[str, Any]:
    change = figures.message_types_change
    return {
        "business": figures.business,
        "since": figures.since,
        "until": figures.until,
        "as_of": figures.as_of,
        "scripts": [figure_row(s) for s in figures.scripts],
        "message_types_change": None
        if change is None
        else {
            "recorded_at": change.recorded_at,
            "message_types": list(change.message_types),
            "opted_in_before": change.opted_in_before,
        },
        "flags": [{"kind": f.kind, "message": f.message} for f in quality_flags(figures)],
        "delivery": [delivery_row(d) for d in figures.delivery],
    }


def quality_table(figures: QualityFigures) -> str:
    """A plain-text table for a terminal: counts with their rates."""
    header = (
        "locale", "version", "calls", "answered", "opt_in", "declined", "opt_out", "hung_up", "no_input",
        "prompts/call", "s to decide", "out<=7d", "out<=30d",
    )  # fmt: skip
    lines = [header]
    for s in figures.scripts:
        r = figure_row(s)
        lines.append(
            (
                s.locale or "(unknown)",
                str(s.script_version or "-"),
                str(s.calls),
                str(s.answered),
                f"{s.opt_in} ({percent(r['opt_in_rate'])})",
                f"{s.declined} ({percent(r['declined_rate'])})",
                f"{s.opt_out} ({percent(r['opt_out_rate'])})",
                f"{s.hung_up} ({percent(r['hung_up_rate'])})",
                f"{s.no_input} ({percent(r['no_input_rate'])})",
                "-" if s.prompts_per_call is None else f"{s.prompts_per_call:.2f}",
                "-" if s.median_seconds_to_decision is None else f"{s.median_seconds_to_decision:g}",
                f"{s.opted_out_7d}/{s.followed_7d} ({percent(r['opted_out_7d_rate'])})",
                f"{s.opted_out_30d}/{s.followed_30d} ({percent(r['opted_out_30d_rate'])})",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [f"{figures.business}: {figures.since or 'start'} to {figures.until or 'now'}"]
    text += [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines
    ]
    text += delivery_table(figures.delivery)
    flags = quality_flags(figures)
    text.append("flags:" if flags else "flags: none")
    text += [f"  - {f.message}" for f in flags]
    return "\n".join(text) + "\n"


async def with_frequency_changes(
    store: ConsentStore, figures: QualityFigures, locales: tuple[str, ...]
) -> QualityFigures:
    """Add every published version whose promised frequency differs from the version before it."""
    changes: list[FrequencyChange] = []
    for locale in locales:
        versions = sorted(await store.script_versions(figures.business, locale), key=lambda v: v.version)
        previous: str | None = None
        for version in versions:
            try:
                frequency = parse_script(version.text).frequency
            except ScriptError:
                continue
            if previous is not None and frequency != previous:
                published = await store.script_published_at(figures.business, locale, version.version)
                if published is not None:
                    seq, at = published
                    changes.append(
                        FrequencyChange(
                            locale,
                            version.version,
                            at,
                            previous,
                            frequency,
                            await store.opted_in_before(figures.business, seq),
                        )
                    )
            previous = frequency
    return dataclasses.replace(figures, frequency_changes=tuple(changes))
