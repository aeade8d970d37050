"""The record times every write stamps: `utc_text` and `utc_iso` format exactly as datetime's strftime did."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from consent_store.writing import utc_iso, utc_now, utc_text

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# From 1970 to 9999: the years strftime writes with four digits.
NANOSECONDS = st.integers(min_value=0, max_value=253_402_300_799_999_999_999)


def strftime_of(ns: int) -> str:
    return (EPOCH + dt.timedelta(microseconds=ns // 1000)).strftime(FORMAT)


@settings(max_examples=2000)
@given(NANOSECONDS)
def test_same_text_as_strftime(ns: int) -> None:
    assert utc_text(ns) == strftime_of(ns)


@given(st.lists(NANOSECONDS, min_size=2, max_size=40))
def test_the_cached_second_never_leaks_into_another(stamps: list[int]) -> None:
    # Alternating seconds, equal seconds, going back in time: each text stands on its own.
    for ns in [*stamps, *reversed(stamps)]:
        assert utc_text(ns) == strftime_of(ns)


def test_edges_of_a_second_and_of_a_year() -> None:
    for ns in (
        0,
        999,
        1_000,
        999_999_999,
        1_000_000_000,
        1_798_761_599_999_999_999,
        1_798_761_600_000_000_000,
    ):
        assert utc_text(ns) == strftime_of(ns)
    assert utc_text(1_798_761_599_999_999_999) == "2026-12-31T23:59:59.999999Z"


def test_now_is_now() -> None:
    before = dt.datetime.now(dt.UTC).strftime(FORMAT)
    now = utc_now()
    after = dt.datetime.now(dt.UTC).strftime(FORMAT)
    assert before <= now <= after
    assert len(now) == 27


# Naive (taken as UTC) and UTC datetimes over the years strftime writes with four digits.
DATETIMES = st.datetimes(
    min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59, 999_999)
)


@settings(max_examples=2000)
@given(DATETIMES, st.booleans())
def test_a_datetime_reads_as_strftime_writes_it(moment: dt.datetime, aware: bool) -> None:
    if aware:
        moment = moment.replace(tzinfo=dt.UTC)
    assert utc_iso(moment) == moment.strftime(FORMAT)


@given(DATETIMES.filter(lambda m: dt.datetime(1001, 1, 1) < m < dt.datetime(9998, 12, 31)))
def test_a_datetime_in_another_zone_is_written_in_utc(moment: dt.datetime) -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    assert utc_iso(moment.replace(tzinfo=paris)) == (moment - dt.timedelta(hours=1)).strftime(FORMAT)
