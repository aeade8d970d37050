"""parse_period: the one reading of since/until for pages (?since=) and commands (--since)."""

from __future__ import annotations

import pytest

from ivr.evidence.export import parse_period


def test_open_ends_are_none_and_naive_times_are_utc() -> None:
    assert parse_period(None, "") == (None, None)
    assert parse_period("2026-01-31", "2026-02-01T12:00+02:00") == (
        "2026-01-31T00:00:00.000000Z",
        "2026-02-01T10:00:00.000000Z",
    )


@pytest.mark.parametrize(
    ("since", "until", "prefix", "named"),
    [
        ("soon", None, "", "since 'soon'"),
        (None, "2026-13-01", "--", "--until '2026-13-01'"),
        ("2026-01-01", "x" * 500, "--", "--until 'xxxx"),
        ("2026-01-01\n", None, "", "since '2026-01-01\\n'"),
    ],
)
def test_a_bad_value_is_refused_naming_it(
    since: str | None, until: str | None, prefix: str, named: str
) -> None:
    with pytest.raises(ValueError, match="is not an ISO-8601 date or time") as refused:
        parse_period(since, until, prefix)
    assert str(refused.value).startswith(named)
