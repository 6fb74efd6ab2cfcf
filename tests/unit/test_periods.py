"""Billing periods anchored at the subscription start (semantics.md, Subscription)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.periods import Period, add_months, period_at_index, period_containing, period_index_at
from tests.support.instants import utc

JAN31 = utc(2026, 1, 31)


def test_monthly_from_the_31st_clamps_to_month_end_without_drifting() -> None:
    starts = [period_at_index(JAN31, "monthly", i).start for i in range(4)]
    assert starts == [utc(2026, 1, 31), utc(2026, 2, 28), utc(2026, 3, 31), utc(2026, 4, 30)]
    assert period_at_index(JAN31, "monthly", 3).end == utc(2026, 5, 31)


def test_leap_year_february() -> None:
    anchor = utc(2028, 1, 31)
    assert period_at_index(anchor, "monthly", 1) == Period(utc(2028, 2, 29), utc(2028, 3, 31), 1)


def test_quarterly_and_annual_steps() -> None:
    assert [period_at_index(JAN31, "quarterly", i).start for i in range(4)] == [
        utc(2026, 1, 31), utc(2026, 4, 30), utc(2026, 7, 31), utc(2026, 10, 31),
    ]
    leap_day = utc(2028, 2, 29)
    assert [period_at_index(leap_day, "annual", i).start for i in range(5)] == [
        utc(2028, 2, 29), utc(2029, 2, 28), utc(2030, 2, 28), utc(2031, 2, 28), utc(2032, 2, 29),
    ]


def test_add_months_keeps_time_of_day_and_crosses_years() -> None:
    assert add_months(utc(2026, 11, 30, 13, 45), 3) == utc(2027, 2, 28, 13, 45)
    assert add_months(utc(2026, 1, 15), 24) == utc(2028, 1, 15)


def test_period_seconds() -> None:
    assert period_at_index(utc(2026, 2, 1), "monthly", 0).seconds == 28 * 86400


ANCHOR = utc(2026, 1, 15, 12, 0)  # noon on the 15th


@pytest.mark.parametrize(
    ("at", "index"),
    [
        (utc(2026, 1, 15, 12, 0), 0),  # the start is inclusive
        (utc(2026, 2, 15, 11, 59, 59), 0),  # the day of the boundary, before the anchor's time
        (utc(2026, 2, 15, 12, 0), 1),  # the end is exclusive: this is period 1's start
        (utc(2026, 2, 15, 12, 0, 1), 1),
        (utc(2026, 2, 14, 23, 0), 0),
        (utc(2026, 3, 15, 11, 0), 1),
        (utc(2026, 3, 16, 0, 0), 2),
        (utc(2027, 1, 15, 11, 59), 11),
        (utc(2027, 1, 15, 12, 0), 12),
    ],
)
def test_period_index_at_boundaries(at: datetime, index: int) -> None:
    assert period_index_at(ANCHOR, "monthly", at) == index


def test_period_index_at_quarterly_boundary() -> None:
    assert period_index_at(JAN31, "quarterly", utc(2026, 4, 29, 23, 59)) == 0
    assert period_index_at(JAN31, "quarterly", utc(2026, 4, 30)) == 1


def test_period_index_before_the_anchor_is_refused() -> None:
    with pytest.raises(ValueError):
        period_index_at(ANCHOR, "monthly", ANCHOR - timedelta(seconds=1))


def test_end_time_clamps_the_final_period() -> None:
    end = utc(2026, 3, 10)
    final = period_containing(JAN31, "monthly", utc(2026, 3, 5), end)
    assert final == Period(utc(2026, 2, 28), utc(2026, 3, 10), 1)
    assert final.seconds == 10 * 86400
    # A period wholly before the end is not touched.
    assert period_at_index(JAN31, "monthly", 0, end) == Period(utc(2026, 1, 31), utc(2026, 2, 28), 0)


# Hypothesis wants naive bounds; `timezones` makes the drawn values aware.
anchors = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2060, 12, 31), timezones=st.just(UTC)  # noqa: DTZ001
)
plans = st.sampled_from(["monthly", "quarterly", "annual"])


@given(anchors, plans, st.integers(min_value=0, max_value=40 * 365 * 86400))
def test_the_period_containing_an_instant_contains_it(anchor: datetime, plan: str, offset: int) -> None:
    at = anchor + timedelta(seconds=offset)
    period = period_containing(anchor, plan, at)
    assert period.contains(at)
    assert period == period_at_index(anchor, plan, period.index)


@given(anchors, plans, st.integers(min_value=0, max_value=200))
def test_consecutive_periods_are_contiguous(anchor: datetime, plan: str, index: int) -> None:
    current = period_at_index(anchor, plan, index)
    following = period_at_index(anchor, plan, index + 1)
    assert current.start < current.end == following.start
    assert period_index_at(anchor, plan, current.start) == index
    assert period_index_at(anchor, plan, current.end - timedelta(microseconds=1)) == index


def test_an_anchor_exists_for_a_period_ending_on_any_day() -> None:
    from datetime import datetime, timedelta

    from shared.periods import anchor_for_period_ending, period_at_index

    day = datetime(2027, 1, 1, 12, 30, 5, tzinfo=UTC)
    for offset in range(800):
        end = day + timedelta(days=offset)
        anchor, index = anchor_for_period_ending(end)
        assert period_at_index(anchor, "monthly", index).end == end
        assert index in (0, 1)
    anchor, index = anchor_for_period_ending(datetime(2027, 5, 31, tzinfo=UTC))
    assert (anchor.month, anchor.day, index) == (3, 31, 1)
