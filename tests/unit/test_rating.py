"""Rating a period (semantics.md, Rating): plans in, rounded lines out, by hand."""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.models import Meter, PricePlan
from shared.periods import Period, period_at_index
from shared.rating import RatingInput, charges_in_period, invoice_total, rate
from tests.support.instants import utc

D = Decimal


def component(meter: str, scheme: str, prices: list[tuple[Any, Any]], **extra: Any) -> dict[str, Any]:
    time_unit = extra.pop("time_unit_name", None)
    price_scheme: dict[str, Any] = {
        "scheme_type": scheme,
        "prices": [{"price": p, "cap": c} for p, c in prices],
    }
    if time_unit is not None:
        price_scheme["time_unit_name"] = time_unit
    return {"meter_name": meter, "meter_display_name": meter.replace("_", " "), "price_scheme": price_scheme, **extra}


def plan(components: list[dict[str, Any]], period: str = "monthly", **extra: Any) -> PricePlan:
    return PricePlan.model_validate({"name": "p", "period": period, "metered_components": components, **extra})


MONTH = Period(utc(2026, 1, 1), utc(2026, 2, 1), 0)


def rated(price_plan: PricePlan, usage: dict[str, Any], period: Period = MONTH, full: int | None = None,
          meters: dict[str, Meter] | None = None) -> list[tuple[str, Decimal, Decimal]]:
    lines = rate(
        RatingInput(
            plan=price_plan, period=period, full_period_seconds=full or period.seconds,
            usage={k: D(v) for k, v in usage.items()}, meters=meters or {},
        )
    )
    return [(line.type, line.quantity, line.amount) for line in lines]


GROWTH = plan(
    [component("api_calls", "TIERED", [(0.00, 10000), (0.001, 100000), (0.0005, None)])],
    base_price=49.00,
    base_price_description="Platform fee",
)


def test_worked_example() -> None:
    lines = rate(RatingInput(plan=GROWTH, period=MONTH, full_period_seconds=MONTH.seconds,
                             usage={"api_calls": D(150000)}, meters={}))
    assert [(line.type, line.description, line.meter_name, line.quantity, line.amount) for line in lines] == [
        ("base_price", "Platform fee", None, D(1), D("49.00")),
        ("usage", "api calls", "api_calls", D(150000), D("115.00")),
    ]
    assert invoice_total(lines) == D("164.00")
    assert str(invoice_total(lines)) == "164.00"


def test_flat() -> None:
    assert rated(plan([component("gb", "FLAT", [(0.25, None)])]), {"gb": 7}) == [("usage", D(7), D("1.75"))]


def test_no_usage_reported_rates_zero() -> None:
    assert rated(plan([component("gb", "FLAT", [(0.25, None)])]), {}) == [("usage", D(0), D("0.00"))]


def test_each_line_is_rounded_half_up() -> None:
    p = plan([component("a", "FLAT", [(0.001, None)]), component("b", "FLAT", [(0.001, None)])])
    # 5 x 0.001 = 0.005 -> 0.01; 4 x 0.001 = 0.004 -> 0.00
    assert rated(p, {"a": 5, "b": 4}) == [("usage", D(5), D("0.01")), ("usage", D(4), D("0.00"))]


def test_limit_caps_the_quantity() -> None:
    p = plan([component("gb", "FLAT", [(2, None)], limit=100)])
    assert rated(p, {"gb": 150}) == [("usage", D(100), D("200.00"))]
    assert rated(p, {"gb": 40}) == [("usage", D(40), D("80.00"))]


def test_watermark_is_a_committed_floor() -> None:
    p = plan([component("gb", "FLAT", [(2, None)], watermark=50)])
    assert rated(p, {"gb": 20}) == [("usage", D(50), D("100.00"))]
    assert rated(p, {"gb": 70}) == [("usage", D(70), D("140.00"))]


def test_limit_and_watermark_together() -> None:
    p = plan([component("gb", "FLAT", [(1, None)], limit=100, watermark=10)])
    assert [q for _, q, _ in rated(p, {"gb": 5})] == [D(10)]
    assert [q for _, q, _ in rated(p, {"gb": 500})] == [D(100)]


def test_component_minimum_charge() -> None:
    p = plan([component("gb", "FLAT", [(0.01, None)], minimum_charge=5)])
    assert rated(p, {"gb": 100}) == [("usage", D(100), D("5.00"))]  # 1.00 raised to 5.00
    assert rated(p, {"gb": 1000}) == [("usage", D(1000), D("10.00"))]


def test_plan_minimum_charge_true_up() -> None:
    p = plan([component("gb", "FLAT", [(1, None)])], minimum_charge=10)
    lines = rate(RatingInput(plan=p, period=MONTH, full_period_seconds=MONTH.seconds, usage={"gb": D(3)}, meters={}))
    assert [(line.type, line.description, line.quantity, line.amount) for line in lines] == [
        ("usage", "gb", D(3), D("3.00")),
        ("minimum_charge", "Minimum charge true-up", D(1), D("7.00")),
    ]
    assert invoice_total(lines) == D("10.00")
    assert rated(p, {"gb": 12}) == [("usage", D(12), D("12.00"))]  # above the minimum: no line
    assert rated(p, {"gb": 10}) == [("usage", D(10), D("10.00"))]  # exactly at it: no line


def test_annual_plan_with_monthly_base_price_charges_it_12_times() -> None:
    p = plan([], period="annual", base_price=10, base_price_frequency="monthly")
    year = period_at_index(utc(2026, 1, 1), "annual", 0)
    assert rated(p, {}, period=year) == [("base_price", D(12), D("120.00"))]


@pytest.mark.parametrize(
    ("index", "charged"), [(0, True), (1, False), (11, False), (12, True), (13, False), (24, True)],
)
def test_monthly_plan_with_annual_base_price(index: int, charged: bool) -> None:
    p = plan([], period="monthly", base_price=120, base_price_frequency="annual")
    period = period_at_index(utc(2026, 1, 1), "monthly", index)
    expected = [("base_price", D(1), D("120.00"))] if charged else []
    assert rated(p, {}, period=period) == expected


def test_charges_in_period() -> None:
    assert charges_in_period("annual", "monthly", 0) == 12
    assert charges_in_period("annual", "quarterly", 3) == 4
    assert charges_in_period("quarterly", "monthly", 0) == 3
    assert charges_in_period("monthly", None, 5) == 1
    assert charges_in_period("monthly", "quarterly", 3) == 1
    assert charges_in_period("monthly", "quarterly", 4) == 0
    assert charges_in_period("quarterly", "annual", 4) == 1
    assert charges_in_period("quarterly", "annual", 5) == 0


def test_short_final_period_prorates_base_price_by_seconds() -> None:
    p = plan([], base_price=49)
    full = period_at_index(utc(2026, 2, 1), "monthly", 0)  # 28 days
    short = period_at_index(utc(2026, 2, 1), "monthly", 0, end_time=utc(2026, 2, 8))  # 7 days
    assert rated(p, {}, period=short, full=full.seconds) == [("base_price", D("0.25"), D("12.25"))]


def test_prorating_rounds_the_amount_to_cents() -> None:
    p = plan([], base_price=10)
    full = period_at_index(utc(2026, 1, 1), "monthly", 0)  # 31 days
    short = Period(full.start, utc(2026, 1, 2), 0)  # 1 day: 10 / 31 = 0.3225...
    [(kind, quantity, amount)] = rated(p, {}, period=short, full=full.seconds)
    assert (kind, amount) == ("base_price", D("0.32"))
    with localcontext() as ctx:
        ctx.prec = 80
        assert quantity == D(86400) / D(31 * 86400)  # exact to 80 digits, not rounded early


GAUGE = Meter.model_validate({"name": "seats", "meter_type": "GAUGE", "aggregation": "SUM"})


@pytest.mark.parametrize(
    ("time_unit", "quantity", "amount"),
    [(None, D(3), "4.50"), ("hour", D(3), "4.50"), ("minute", D(180), "270.00"), ("day", D("0.125"), "0.19")],
)
def test_gauge_sum_is_converted_to_the_time_unit(time_unit: str | None, quantity: Decimal, amount: str) -> None:
    extra = {"time_unit_name": time_unit} if time_unit else {}
    p = plan([component("seats", "FLAT", [(1.5, None)], **extra)])
    # 3 hours of level 1 = 10800 level-seconds
    assert rated(p, {"seats": 10800}, meters={"seats": GAUGE}) == [("usage", quantity, D(amount))]


def test_counter_sum_is_not_converted() -> None:
    counter = Meter.model_validate({"name": "seats", "meter_type": "COUNTER", "aggregation": "SUM"})
    p = plan([component("seats", "FLAT", [(1, None)])])
    assert rated(p, {"seats": 10800}, meters={"seats": counter}) == [("usage", D(10800), D("10800.00"))]


def test_gauge_limit_applies_after_conversion() -> None:
    p = plan([component("seats", "FLAT", [(1, None)], limit=2)])
    assert rated(p, {"seats": 10800}, meters={"seats": GAUGE}) == [("usage", D(2), D("2.00"))]


prices = st.decimals(min_value=0, max_value=100, places=4)
usages = st.decimals(min_value=0, max_value=10**7, places=3)


@given(st.lists(st.tuples(prices, usages), min_size=1, max_size=5), st.decimals(min_value=0, max_value=1000, places=2))
def test_total_is_the_sum_of_rounded_lines(components: list[tuple[Decimal, Decimal]], base: Decimal) -> None:
    p = plan([component(f"m{i}", "FLAT", [(price, None)]) for i, (price, _) in enumerate(components)], base_price=base)
    usage = {f"m{i}": quantity for i, (_, quantity) in enumerate(components)}
    lines = rate(RatingInput(plan=p, period=MONTH, full_period_seconds=MONTH.seconds, usage=usage, meters={}))
    assert all(line.amount.as_tuple().exponent == -2 for line in lines)
    usage_lines = [line for line in lines if line.type == "usage"]
    for line, (price, quantity) in zip(usage_lines, components, strict=True):
        assert abs(line.amount - price * quantity) <= D("0.005")
    assert invoice_total(lines) == sum((line.amount for line in lines), D(0))
