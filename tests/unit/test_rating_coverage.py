"""Charge windows and coverage: how many time-based charges fall due in a period, pro-rated."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from shared.coverage import Coverage, coverage_for
from shared.models import PricePlan, Subscription
from shared.periods import Period, charge_windows, elapsed_seconds, period_at_index
from tests.support.decimals import ratio
from tests.support.instants import utc

D = Decimal


JAN31 = utc(2026, 1, 31)


def test_elapsed_seconds_is_exact() -> None:
    assert elapsed_seconds(utc(2026, 1, 1), utc(2026, 1, 2)) == D(86400)
    assert elapsed_seconds(utc(2026, 1, 1), datetime(2026, 1, 1, 0, 0, 1, 250000, tzinfo=UTC)) == D("1.25")


def test_windows_of_a_shorter_frequency_split_the_period_like_periods_do() -> None:
    # Quarterly plan from Jan 31 with a monthly fee: windows clamp to month ends, never drift.
    assert charge_windows(JAN31, "quarterly", "monthly", 0) == [
        (utc(2026, 1, 31), utc(2026, 2, 28)), (utc(2026, 2, 28), utc(2026, 3, 31)),
        (utc(2026, 3, 31), utc(2026, 4, 30)),
    ]
    assert len(charge_windows(JAN31, "annual", "monthly", 2)) == 12
    assert len(charge_windows(JAN31, "annual", "quarterly", 0)) == 4


@pytest.mark.parametrize(("plan_period", "index", "due"), [
    ("monthly", 0, True), ("monthly", 1, False), ("monthly", 12, True), ("quarterly", 4, True), ("quarterly", 5, False),
])
def test_windows_of_a_longer_frequency_fall_in_the_first_period_of_each_cycle(plan_period: str, index: int,
                                                                             due: bool) -> None:
    windows = charge_windows(JAN31, plan_period, "annual", index)
    assert bool(windows) is due
    if due:
        months = 3 if plan_period == "quarterly" else 1
        assert windows == [(period_at_index(JAN31, plan_period, index).start,
                            period_at_index(JAN31, "annual", index * months // 12).end)]


PLAN = PricePlan.model_validate({"name": "p", "period": "monthly", "metered_components": [],
                                 "trial": {"time_length": 10, "time_unit_name": "day"}})


def test_coverage_of_a_subscription_period() -> None:
    sub = Subscription(customer_name="c", price_plan_name="p", start_time=utc(2026, 2, 1), end_time=utc(2026, 3, 15))
    first = coverage_for(PLAN, period_at_index(sub.start_time, "monthly", 0, sub.end_time), 0, sub)
    assert (first.trial_end, first.shortened, first.entirely_in_trial, first.first_after_trial) == (
        utc(2026, 2, 11), False, False, True)
    assert first.charge_quantity(None) == ratio(18, 28)
    final = coverage_for(PLAN, period_at_index(sub.start_time, "monthly", 1, sub.end_time), 0, sub)
    assert (final.shortened, final.full_end, final.first_after_trial) == (True, utc(2026, 4, 1), False)
    assert final.charge_quantity(None) == ratio(14, 31)
    assert final.billable_fraction() == ratio(14, 31)


def test_a_longer_charge_is_cut_only_by_an_end_inside_the_period_it_is_charged_in() -> None:
    # Monthly plan, annual fee, subscription ending in period 3: period 0 owes the whole year (no refunds later).
    sub = Subscription(customer_name="c", price_plan_name="p", start_time=utc(2026, 1, 1), end_time=utc(2026, 4, 15))
    bare = PLAN.model_copy(update={"trial": None})
    assert coverage_for(bare, period_at_index(sub.start_time, "monthly", 0, sub.end_time), 0, sub).charge_quantity(
        "annual") == D(1)
    # Ending inside period 0 itself cuts the year: 14 of 365 days.
    short = sub.model_copy(update={"end_time": utc(2026, 1, 15)})
    cov = coverage_for(bare, period_at_index(short.start_time, "monthly", 0, short.end_time), 0, short)
    assert cov.charge_quantity("annual") == ratio(14, 365)


def test_without_a_subscription_the_period_stands_alone() -> None:
    period = Period(utc(2026, 2, 1), utc(2026, 2, 8), 0)
    cov = coverage_for(PLAN, period, 28 * 86400, None)
    assert cov == Coverage(anchor=utc(2026, 2, 1), plan_period="monthly", period=period, full_end=utc(2026, 3, 1))
    assert cov.charge_quantity(None) == D("0.25")
