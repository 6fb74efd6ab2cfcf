"""Golden figures of the rating engine (issue 5), each computed by hand in the comment beside it.

Some of these also live in test_pricing / test_money / test_periods / test_rating; they are
repeated here on purpose, through the public rating entry points, as the issue's acceptance set.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from shared.models import PricePlan, Subscription
from shared.money import round_cents
from shared.periods import Period, period_at_index
from shared.pricing import price
from shared.rating import RatingInput, invoice_total, rate
from tests.support.instants import utc

D = Decimal
TIERS = [(D(50), D(10)), (D(40), D(20)), (D(30), None)]


@pytest.mark.parametrize(("quantity", "expected"), [(5, 250), (15, 700), (25, 1050)])
def test_tiered(quantity: int, expected: int) -> None:
    # 5 x 50; 10 x 50 + 5 x 40; 10 x 50 + 10 x 40 + 5 x 30
    assert price("TIERED", D(quantity), TIERS) == D(expected)


@pytest.mark.parametrize(("quantity", "expected"), [(5, 250), (15, 600), (25, 750)])
def test_volume(quantity: int, expected: int) -> None:
    # 5 x 50; 15 x 40; 25 x 30
    assert price("VOLUME", D(quantity), TIERS) == D(expected)


def test_package_of_ten_at_fifty() -> None:
    assert price("PACKAGE", D(25), [(D(50), D(10))]) == D(150)  # ceil(25 / 10) = 3 x 50


@pytest.mark.parametrize(("quantity", "expected"), [(0, 0), (2, 1), (99, 1), (100, 1), (150, 2), (300, 3)])
def test_package_of_a_hundred_at_one_dollar(quantity: int, expected: int) -> None:
    assert price("PACKAGE", D(quantity), [(D("1.00"), D(100))]) == D(expected)


@pytest.mark.parametrize(("amount", "expected"), [("10.275", "10.28"), ("10.271", "10.27"), ("0.005", "0.01")])
def test_round_cents_half_up(amount: str, expected: str) -> None:
    assert str(round_cents(D(amount))) == expected


def one_meter_plan(unit_price: Any) -> PricePlan:
    return PricePlan.model_validate({
        "name": "p", "period": "monthly",
        "metered_components": [{"meter_name": "m", "meter_display_name": "m",
                                "price_scheme": {"scheme_type": "FLAT", "prices": [{"price": unit_price}]}}],
    })


@pytest.mark.parametrize(("quantity", "expected"), [("10275", "10.28"), ("10271", "10.27"), ("5", "0.01")])
def test_rounding_happens_at_the_line(quantity: str, expected: str) -> None:
    # 0.001 per unit: 10.275, 10.271 and 0.005 before rounding.
    month = Period(utc(2026, 1, 1), utc(2026, 2, 1), 0)
    [line] = rate(RatingInput(plan=one_meter_plan(0.001), period=month, full_period_seconds=month.seconds,
                              usage={"m": D(quantity)}, meters={}))
    assert str(line.amount) == expected


def test_anchor_on_the_31st_monthly() -> None:
    anchor = utc(2026, 1, 31)
    starts = [period_at_index(anchor, "monthly", i).start for i in range(4)]
    assert starts == [utc(2026, 1, 31), utc(2026, 2, 28), utc(2026, 3, 31), utc(2026, 4, 30)]


GROWTH = PricePlan.model_validate({
    "name": "growth-plan", "period": "monthly", "base_price": 49.00, "base_price_description": "Platform fee",
    "metered_components": [{
        "meter_name": "api_calls", "meter_display_name": "API calls",
        "price_scheme": {"scheme_type": "TIERED", "prices": [
            {"price": 0.00, "cap": 10000}, {"price": 0.001, "cap": 100000}, {"price": 0.0005, "cap": None}]},
    }],
})


def test_growth_plan_with_150000_api_calls_is_164() -> None:
    subscription = Subscription(customer_name="acme", price_plan_name="growth-plan", start_time=utc(2026, 1, 1))
    month = period_at_index(utc(2026, 1, 1), "monthly", 0)
    lines = rate(RatingInput(plan=GROWTH, period=month, full_period_seconds=month.seconds,
                             usage={"api_calls": D(150000)}, meters={}, subscription=subscription))
    # 49.00 + (0 x 10,000 + 0.001 x 90,000 + 0.0005 x 50,000 = 115.00)
    assert [(line.type, line.quantity, str(line.amount)) for line in lines] == [
        ("base_price", D(1), "49.00"), ("usage", D(150000), "115.00"),
    ]
    assert str(invoice_total(lines)) == "164.00"
