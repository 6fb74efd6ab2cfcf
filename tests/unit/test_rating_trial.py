"""Trials: the window is free (usage split at the trial end, base price pro-rated by seconds),
and the credit is a negative line on the first invoice after the trial, capped at its subtotal.
Every figure is computed by hand in the comment beside it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from shared.models import Meter, PricePlan, Subscription, Trial
from shared.periods import period_at_index
from shared.rating import RatingInput, invoice_total, rate
from shared.trial import is_first_period_after_trial, trial_end
from tests.support.decimals import ratio
from tests.support.instants import utc

D = Decimal
JAN1 = datetime(2026, 1, 1, tzinfo=UTC)


def plan(period: str = "monthly", **extra: Any) -> PricePlan:
    document: dict[str, Any] = {
        "name": "trial-plan", "period": period, "base_price": 31, "base_price_description": "Platform fee",
        "trial": {"time_length": 14, "time_unit_name": "day", "credit": 20},
        "metered_components": [{"meter_name": "api_calls", "meter_display_name": "API calls",
                                "price_scheme": {"scheme_type": "FLAT", "prices": [{"price": 0.01}]}}],
    }
    document.update(extra)
    return PricePlan.model_validate(document)


def subscription(start: datetime = JAN1, end: datetime | None = None) -> Subscription:
    return Subscription(customer_name="acme", price_plan_name="trial-plan", start_time=start, end_time=end)


def rated(price_plan: PricePlan, index: int, usage: dict[str, Any], in_trial: dict[str, Any] | None = None,
          sub: Subscription | None = None, meters: dict[str, Meter] | None = None) -> list[tuple[str, Decimal, str]]:
    sub = sub or subscription()
    full = period_at_index(sub.start_time, price_plan.period, index)
    period = period_at_index(sub.start_time, price_plan.period, index, sub.end_time)
    lines = rate(RatingInput(
        plan=price_plan, period=period, full_period_seconds=full.seconds, meters=meters or {},
        usage={k: D(v) for k, v in usage.items()}, subscription=sub,
        usage_in_trial={k: D(v) for k, v in (in_trial or {}).items()},
    ))
    assert invoice_total(lines) == sum((line.amount for line in lines), D(0))
    return [(line.type, line.quantity, str(line.amount)) for line in lines]


@pytest.mark.parametrize(
    ("length", "unit", "end"),
    [(14, "day", utc(2026, 1, 15)), (2, "week", utc(2026, 1, 15)), (1, "month", utc(2026, 2, 1)),
     (0, "day", None), (None, None, None)],
)
def test_trial_end(length: int | None, unit: str | None, end: datetime | None) -> None:
    given = {"time_length": length, "time_unit_name": unit}
    trial = Trial.model_validate({k: v for k, v in given.items() if v is not None})
    assert trial_end(JAN1, trial) == end


def test_a_month_trial_from_the_31st_clamps_like_periods() -> None:
    assert trial_end(utc(2026, 1, 31), Trial(time_length=1, time_unit_name="month")) == utc(2026, 2, 28)


def test_a_credit_without_a_length_is_a_sign_up_credit() -> None:
    # Zero-length window: nothing is free, the credit lands on the first invoice.
    assert trial_end(JAN1, Trial(credit=5)) == JAN1
    p = plan(trial={"credit": 5})
    assert rated(p, 0, {"api_calls": 100}) == [
        ("base_price", D(1), "31.00"), ("usage", D(100), "1.00"), ("trial_credit", D(1), "-5.00"),
    ]


def test_no_trial_rates_as_before() -> None:
    assert trial_end(JAN1, None) is None
    assert rated(plan(trial={}), 0, {"api_calls": 100}) == [("base_price", D(1), "31.00"), ("usage", D(100), "1.00")]


def test_usage_split_at_the_trial_end_and_base_pro_rated() -> None:
    # Trial [Jan 1, Jan 15): 14 of January's 31 days are free, 17 are paid.
    # base 31 x 17/31 = 17.00; usage (3000 - 1000 in trial) x 0.01 = 20.00;
    # subtotal 37.00; credit 20.00 (January is the first period ending after Jan 15) -> 17.00
    lines = rated(plan(), 0, {"api_calls": 3000}, {"api_calls": 1000})
    assert lines == [
        ("base_price", ratio(17, 31), "17.00"),
        ("usage", D(2000), "20.00"),
        ("trial_credit", D(1), "-20.00"),
    ]


def test_the_credit_is_capped_at_the_subtotal() -> None:
    # Same period, credit 50: subtotal 37.00, so only 37.00 is credited; the total is 0.00.
    lines = rated(plan(trial={"time_length": 14, "time_unit_name": "day", "credit": 50}), 0,
                  {"api_calls": 3000}, {"api_calls": 1000})
    assert lines[-1] == ("trial_credit", D(1), "-37.00")
    assert sum(D(amount) for _, _, amount in lines) == D("0.00")


def test_nothing_to_credit_writes_no_line() -> None:
    free = plan(base_price=0)
    assert rated(free, 0, {"api_calls": 10}, {"api_calls": 10}) == [("usage", D(0), "0.00")]


def test_a_period_entirely_in_the_trial_is_free_whatever_usage_says() -> None:
    # One-month trial = all of period 0. The aggregator's split is not even needed.
    p = plan(trial={"time_length": 1, "time_unit_name": "month", "credit": 20})
    assert rated(p, 0, {"api_calls": 5000}) == [("base_price", D(0), "0.00"), ("usage", D(0), "0.00")]
    # February is the first period ending after the trial (Feb 1): full price, credit.
    assert rated(p, 1, {"api_calls": 5000}) == [
        ("base_price", D(1), "31.00"), ("usage", D(5000), "50.00"), ("trial_credit", D(1), "-20.00"),
    ]
    assert rated(p, 2, {"api_calls": 5000}) == [("base_price", D(1), "31.00"), ("usage", D(5000), "50.00")]


def test_a_trial_spanning_periods_credits_only_the_period_it_ends_in() -> None:
    # 45 days from Jan 1 ends Feb 15. January is all trial; February (28 days) pays 14/28.
    p = plan(trial={"time_length": 45, "time_unit_name": "day", "credit": 20})
    assert rated(p, 0, {"api_calls": 900}) == [("base_price", D(0), "0.00"), ("usage", D(0), "0.00")]
    assert rated(p, 1, {"api_calls": 900}, {"api_calls": 400}) == [
        ("base_price", D("0.5"), "15.50"), ("usage", D(500), "5.00"), ("trial_credit", D(1), "-20.00"),
    ]


def test_a_trial_ending_on_a_period_boundary_credits_the_next_period() -> None:
    ends = utc(2026, 2, 1)
    assert not is_first_period_after_trial(period_at_index(JAN1, "monthly", 0), ends)
    assert is_first_period_after_trial(period_at_index(JAN1, "monthly", 1), ends)


def test_a_subscription_ending_inside_its_trial_is_never_credited() -> None:
    # Ends Jan 10, before the trial end (Jan 15): the short final period is all trial.
    sub = subscription(end=utc(2026, 1, 10))
    assert rated(plan(), 0, {"api_calls": 300}, sub=sub) == [("base_price", D(0), "0.00"), ("usage", D(0), "0.00")]


def test_trial_and_a_short_final_period_together() -> None:
    # Trial to Jan 15, subscription ends Jan 25: 10 paid days of 31. base 31 x 10/31 = 10.00.
    sub = subscription(end=utc(2026, 1, 25))
    assert rated(plan(), 0, {"api_calls": 1500}, {"api_calls": 500}, sub=sub) == [
        ("base_price", ratio(10, 31), "10.00"), ("usage", D(1000), "10.00"), ("trial_credit", D(1), "-20.00"),
    ]


def test_in_trial_usage_is_floored_at_zero() -> None:
    fortnight = plan(trial={"time_length": 14, "time_unit_name": "day"})
    assert rated(fortnight, 0, {"api_calls": 10}, {"api_calls": 50})[1] == ("usage", D(0), "0.00")


def test_annual_plan_monthly_fee_one_month_trial_owes_exactly_eleven_fees() -> None:
    p = plan(period="annual", base_price=10, base_price_frequency="monthly",
             trial={"time_length": 1, "time_unit_name": "month"})
    assert rated(p, 0, {})[0] == ("base_price", D(11), "110.00")


def test_monthly_plan_annual_fee_the_trial_days_come_off_the_year() -> None:
    # The fee covers [2026-01-01, 2027-01-01), 365 days, 14 of them trial: 365 x 351/365 = 351.00,
    # charged up front in period 0; not again until period 12.
    p = plan(base_price=365, base_price_frequency="annual")
    assert rated(p, 0, {})[0] == ("base_price", ratio(351, 365), "351.00")
    assert [kind for kind, _, _ in rated(p, 1, {})] == ["usage"]
    assert rated(p, 12, {})[0] == ("base_price", D(1), "365.00")


def test_watermark_commits_only_to_the_paid_part_of_the_period() -> None:
    # Watermark 31 units at 1.00: 17 of 31 days paid -> committed floor 17 units.
    p = plan(base_price=0, metered_components=[{
        "meter_name": "gb", "meter_display_name": "GB", "watermark": 31,
        "price_scheme": {"scheme_type": "FLAT", "prices": [{"price": 1}]}}])
    assert rated(p, 0, {"gb": 5}) == [("usage", D(17), "17.00"), ("trial_credit", D(1), "-17.00")]


def test_plan_minimum_is_pro_rated_by_the_trial_and_trued_up_before_the_credit() -> None:
    # Minimum 62 for the month, 17/31 paid -> 34.00. base 17.00 + usage 2.00 = 19.00 -> true-up 15.00;
    # then the credit (20) applies to the 34.00.
    p = plan(minimum_charge=62)
    assert rated(p, 0, {"api_calls": 200}) == [
        ("base_price", ratio(17, 31), "17.00"), ("usage", D(200), "2.00"),
        ("minimum_charge", D(1), "15.00"), ("trial_credit", D(1), "-20.00"),
    ]


def test_gauge_sum_trial_part_is_subtracted_in_level_seconds() -> None:
    # Level 2 all month = 2 x 31 x 86400 level-seconds; the trial's 14 days are 2 x 14 x 86400.
    # Billable 2 x 17 days = 34 level-days at 0.5 per day = 17.00.
    gauge = Meter.model_validate({"name": "gb", "meter_type": "GAUGE", "aggregation": "SUM"})
    p = plan(base_price=0, trial={"time_length": 14, "time_unit_name": "day"}, metered_components=[{
        "meter_name": "gb", "meter_display_name": "GB",
        "price_scheme": {"scheme_type": "FLAT", "time_unit_name": "day", "prices": [{"price": 0.5}]}}])
    assert rated(p, 0, {"gb": 2 * 31 * 86400}, {"gb": 2 * 14 * 86400}, meters={"gb": gauge}) == [
        ("usage", D(34), "17.00")]
