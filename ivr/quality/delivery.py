"""Delivery figures per opt-in script version as rows, flags and text: what the consents led to.

Pure functions of `consent_store.delivery_stats.DeliveryFigures` (no I/O but the error-code
table, read once), so `ivr stats`, /manage/quality and its CSV show the same numbers. The
flags use the same two-proportion test and thresholds as the call figures' flags.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

from consent_store.delivery_stats import DeliveryFigures
from ivr.quality.rates import percent, rate

CHANNEL_ORDER = ("voice", "whatsapp", "sms", "email", "web", "other")

# Appended, in this order, to the quality CSV's columns (the order is a public contract).
DELIVERY_COLUMNS = (
    "opt_in_in_force",
    "messages",
    "delivered",
    "read",
    "failed",
    "delivered_rate",
    "read_rate",
    "failed_rate",
    "failures_by_error",
    "message_recipients",
    "message_followed_7d",
    "message_opted_out_7d",
    "message_opted_out_7d_rate",
    "message_opted_out_7d_by_channel",
    "message_followed_30d",
    "message_opted_out_30d",
    "message_opted_out_30d_rate",
    "message_opted_out_30d_by_channel",
)


@functools.cache
def _error_table() -> dict[int, str]:
    text = resources.files("ivr").joinpath("data/twilio_errors.toml").read_text(encoding="utf-8")
    return {int(code): str(meaning) for code, meaning in tomllib.loads(text)["codes"].items()}


def error_meaning(code: int | None) -> str:
    """What a Twilio ErrorCode means (Twilio's error reference), or where to look it up."""
    if code is None:
        return "no ErrorCode reported"
    return _error_table().get(code) or f"see https://www.twilio.com/docs/api/errors/{code}"


def _by_channel(counts: Sequence[tuple[str, int]]) -> str:
    ordered = sorted(counts, key=lambda c: (CHANNEL_ORDER.index(c[0]) if c[0] in CHANNEL_ORDER else 99, c[0]))
    return "; ".join(f"{channel} {n}" for channel, n in ordered)


def delivery_row(d: DeliveryFigures) -> dict[str, Any]:
    """One version's delivery figures, keyed by DELIVERY_COLUMNS (plus its locale and version)."""
    return {
        "locale": d.locale,
        "script_version": d.script_version,
        "opt_in_in_force": 0 if d.locale is None else 1,
        "messages": d.messages,
        "delivered": d.delivered,
        "read": d.read,
        "failed": d.failed,
        "delivered_rate": rate(d.delivered, d.messages),
        "read_rate": rate(d.read, d.messages),
        "failed_rate": rate(d.failed, d.messages),
        "failures_by_error": "; ".join(f"{code if code is not None else '-'} x{n}" for code, n in d.errors),
        "errors": [{"code": code, "count": n, "meaning": error_meaning(code)} for code, n in d.errors],
        "message_recipients": d.recipients,
        "message_followed_7d": d.followed_7d,
        "message_opted_out_7d": d.opted_out_7d_total,
        "message_opted_out_7d_rate": rate(d.opted_out_7d_total, d.followed_7d),
        "message_opted_out_7d_by_channel": _by_channel(d.opted_out_7d),
        "message_followed_30d": d.followed_30d,
        "message_opted_out_30d": d.opted_out_30d_total,
        "message_opted_out_30d_rate": rate(d.opted_out_30d_total, d.followed_30d),
        "message_opted_out_30d_by_channel": _by_channel(d.opted_out_30d),
    }


def delivery_label(d: DeliveryFigures) -> str:
    return "no opt-in in force" if d.locale is None else f"{d.locale} v{d.script_version}"


# metric -> (what it is called, (count, total))
COMPARED: dict[str, tuple[str, Callable[[DeliveryFigures], tuple[int, int]]]] = {
    "failed_rate": ("message failure rate", lambda d: (d.failed, d.messages)),
    "message_opted_out_30d_rate": (
        "30-day opt-out rate after the first message",
        lambda d: (d.opted_out_30d_total, d.followed_30d),
    ),
}


def delivery_table(figures: Sequence[DeliveryFigures]) -> list[str]:
    """Plain-text lines for a terminal: one per version, then its failures with their meaning."""
    if not figures:
        return ["messages: none reported (point message status callbacks at /twilio/message-status)"]
    header = (
        "opt-in script", "messages", "delivered", "read", "failed", "out<=7d after 1st", "out<=30d after 1st",
    )  # fmt: skip
    lines: list[tuple[str, ...]] = [header]
    for d in figures:
        r = delivery_row(d)
        lines.append(
            (
                delivery_label(d),
                str(d.messages),
                f"{d.delivered} ({percent(r['delivered_rate'])})",
                f"{d.read} ({percent(r['read_rate'])})",
                f"{d.failed} ({percent(r['failed_rate'])})",
                f"{d.opted_out_7d_total}/{d.followed_7d} {r['message_opted_out_7d_by_channel']}".rstrip(),
                f"{d.opted_out_30d_total}/{d.followed_30d} {r['message_opted_out_30d_by_channel']}".rstrip(),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["messages (by the opt-in in force when each was first reported):"]
    text += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    for d in figures:
        for code, n in d.errors:
            shown = code if code is not None else "-"
            text.append(f"  {delivery_label(d)}: ErrorCode {shown} x{n}: {error_meaning(code)}")
    return text
