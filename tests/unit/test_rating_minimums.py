"""Component and plan minimum charges with their frequencies (same rules as base_price_frequency),
pro-rated in a short final period, and the plan true-up computed on the rounded subtotal.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from shared.models import PricePlan, Subscription
from shared.periods import period_at_index
from shared.rating import RatingInput, rate
from tests.support.instants import utc

D = Decimal
JAN1 = datetime(2026, 1, 1, tzinfo=UTC)


def plan(period: str = "monthly", component: dict[str, Any] | None = None, **extra: Any) -> PricePlan:
    return PricePlan.model_validate({
        "name": "p", "period": period,
        "metered_components": [{"meter_name": "gb", "meter_display_name": "GB",
                                "price_scheme": {"scheme_type": "FLAT", "prices": [{"price": 1}]},
                                **(component or {})}],
        **extra,
    })


def rated(price_plan: PricePlan, index: int, gb: Any, start: datetime = JAN1,
          end: datetime | None = None) -> list[tuple[str, str]]:
    subscription = Subscription(customer_name="acme", price_plan_name="p", start_time=start, end_time=end)
    full = period_at_index(start, price_plan.period, index)
    period = period_at_index(start, price_plan.period, index, end)
    lines = rate(RatingInput(plan=price_plan, period=period, full_period_seconds=full.seconds,
                             usage={"gb": D(gb)}, meters={}, subscription=subscription))
    return [(line.type, str(line.amount)) for line in lines]


def test_component_minimum_per_period_by_default() -> None:
    assert rated(plan(component={"minimum_charge": 5}), 0, 2) == [("usage", "5.00")]


def test_monthly_component_minimum_on_an_annual_plan_applies_twelve_times() -> None:
    p = plan("annual", {"minimum_charge": 5, "minimum_charge_frequency": "monthly"})
    assert rated(p, 0, 10) == [("usage", "60.00")]  # 10 GB x 1.00 = 10.00 < 12 x 5
    assert rated(p, 0, 75) == [("usage", "75.00")]


def test_monthly_component_minimum_on_a_quarterly_plan_applies_three_times() -> None:
    p = plan("quarterly", {"minimum_charge": 5, "minimum_charge_frequency": "monthly"})
    assert rated(p, 0, 1) == [("usage", "15.00")]


@pytest.mark.parametrize(("index", "amount"), [(0, "100.00"), (1, "10.00"), (11, "10.00"), (12, "100.00")])
def test_annual_component_minimum_on_a_monthly_plan_applies_in_the_first_period_of_each_year(
    index: int, amount: str
) -> None:
    p = plan(component={"minimum_charge": 100, "minimum_charge_frequency": "annual"})
    assert rated(p, index, 10) == [("usage", amount)]


def test_component_minimum_pro_rated_in_a_short_final_period() -> None:
    # Feb 2026 (28 days), subscription ends Feb 8: 7/28 of a 40.00 minimum = 10.00.
    p = plan(component={"minimum_charge": 40})
    assert rated(p, 0, 1, start=utc(2026, 2, 1), end=utc(2026, 2, 8)) == [("usage", "10.00")]


def test_monthly_plan_minimum_on_an_annual_plan_trues_up_to_twelve_times() -> None:
    p = plan("annual", minimum_charge=10, minimum_charge_frequency="monthly")
    assert rated(p, 0, 30) == [("usage", "30.00"), ("minimum_charge", "90.00")]  # 120 - 30


@pytest.mark.parametrize(("index", "lines"), [
    (0, [("usage", "30.00"), ("minimum_charge", "1170.00")]),
    (1, [("usage", "30.00")]),
    (12, [("usage", "30.00"), ("minimum_charge", "1170.00")]),
])
def test_annual_plan_minimum_on_a_monthly_plan(index: int, lines: list[tuple[str, str]]) -> None:
    p = plan(minimum_charge=1200, minimum_charge_frequency="annual")
    assert rated(p, index, 30) == lines


def test_plan_minimum_pro_rated_in_a_short_final_period() -> None:
    # 7/28 of 100.00 = 25.00; usage 5.00 -> true-up 20.00
    p = plan(minimum_charge=100)
    assert rated(p, 0, 5, start=utc(2026, 2, 1), end=utc(2026, 2, 8)) == [
        ("usage", "5.00"), ("minimum_charge", "20.00"),
    ]


def test_plan_minimum_is_compared_with_the_rounded_lines() -> None:
    # Two lines of 0.005 each round to 0.01 and 0.01: subtotal 0.02, so the true-up to 1.00 is 0.98
    # (on unrounded amounts it would have been 0.99).
    p = PricePlan.model_validate({
        "name": "p", "period": "monthly", "minimum_charge": 1,
        "metered_components": [
            {"meter_name": m, "meter_display_name": m,
             "price_scheme": {"scheme_type": "FLAT", "prices": [{"price": 0.001}]}}
            for m in ("a", "b")
        ],
    })
    month = period_at_index(JAN1, "monthly", 0)
    lines = rate(RatingInput(plan=p, period=month, full_period_seconds=month.seconds,
                             usage={"a": D(5), "b": D(5)}, meters={}))
    assert [str(line.amount) for line in lines] == ["0.01", "0.01", "0.98"]


def test_component_minimum_and_plan_minimum_together() -> None:
    # component floor 20.00; plan minimum 50 -> true-up 30.00
    p = plan(component={"minimum_charge": 20}, minimum_charge=50)
    assert rated(p, 0, 3) == [("usage", "20.00"), ("minimum_charge", "30.00")]
