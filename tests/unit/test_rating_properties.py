"""Property tests of the rating engine (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.add_ons import immediate_charge_lines
from shared.models import PricePlan, Subscription
from shared.periods import period_at_index, period_index_at
from shared.pricing import tiered, volume
from shared.rating import RatingInput, invoice_total, rate
from shared.trial import trial_end

D = Decimal
JAN1 = datetime(2026, 1, 1, tzinfo=UTC)

prices = st.decimals(min_value=0, max_value=100, places=4)
quantities = st.decimals(min_value=0, max_value=10**7, places=3)
money = st.decimals(min_value=0, max_value=500, places=2)


@st.composite
def tier_lists(draw: Any) -> list[tuple[Decimal, Decimal | None]]:
    caps = sorted(set(draw(st.lists(st.integers(min_value=1, max_value=10**6), min_size=0, max_size=5))))
    tier_prices = draw(st.lists(prices, min_size=len(caps) + 1, max_size=len(caps) + 1))
    return [*((p, D(c)) for p, c in zip(tier_prices[:-1], caps, strict=True)), (tier_prices[-1], None)]


@given(tier_lists(), quantities, quantities)
def test_tiered_never_decreases_as_quantity_grows(tiers: list[tuple[Decimal, Decimal | None]], a: Decimal,
                                                  b: Decimal) -> None:
    low, high = sorted((a, b))
    assert tiered(low, tiers) <= tiered(high, tiers)


@given(tier_lists(), st.data())
def test_volume_at_a_cap_uses_the_lower_tier(tiers: list[tuple[Decimal, Decimal | None]], data: Any) -> None:
    capped = [(p, c) for p, c in tiers if c is not None]
    if not capped:
        return
    price, cap = data.draw(st.sampled_from(capped))
    assert cap is not None
    assert volume(cap, tiers) == cap * price


@st.composite
def priced_periods(draw: Any) -> tuple[RatingInput, Decimal]:
    """A random plan using every feature, a subscription on it and one of its periods."""
    period_name = draw(st.sampled_from(["monthly", "quarterly", "annual"]))
    frequency = st.sampled_from([None, "monthly", "quarterly", "annual"])
    credit = draw(money)
    document: dict[str, Any] = {
        "name": "p", "period": period_name, "base_price": float(draw(money)),
        "minimum_charge": float(draw(money)),
        "trial": {"time_length": draw(st.integers(0, 100)), "time_unit_name": "day", "credit": float(credit)},
        "metered_components": [
            {"meter_name": f"m{i}", "meter_display_name": f"m{i}", "minimum_charge": float(draw(money)),
             "price_scheme": {"scheme_type": "FLAT", "prices": [{"price": float(draw(prices))}]}}
            for i in range(draw(st.integers(0, 3)))
        ],
        "add_ons": [{"feature": {"name": f"a{i}"}, "price": float(draw(money)), "price_scheme_type": "FLAT",
                     "single_use": draw(st.booleans()), "quantity_enabled": draw(st.booleans()),
                     "immediately_charge": draw(st.booleans()), "price_frequency": draw(frequency) or period_name}
                    for i in range(draw(st.integers(0, 3)))],
    }
    for key in ("base_price_frequency", "minimum_charge_frequency"):
        if (chosen := draw(frequency)) is not None:
            document[key] = chosen
    plan = PricePlan.model_validate(document)
    start = JAN1 + timedelta(days=draw(st.integers(0, 400)), seconds=draw(st.integers(0, 86399)))
    index = draw(st.integers(0, 14))
    if draw(st.booleans()):  # often the period the trial ends in, where the credit lands
        index = period_index_at(start, plan.period, trial_end(start, plan.trial) or start)
    end = None
    if draw(st.booleans()):
        end = period_at_index(start, plan.period, index).start + timedelta(seconds=draw(st.integers(1, 90 * 86400)))
    subscription = Subscription(
        customer_name="c", price_plan_name="p", start_time=start, end_time=end,
        add_ons=[{"feature": f"a{i}", "quantity": draw(st.integers(1, 5))}
                 for i in range(len(plan.add_ons or []))],
    )
    full = period_at_index(start, plan.period, index)
    period = period_at_index(start, plan.period, index, end)
    usage = {c.meter_name: draw(quantities) for c in plan.metered_components}
    in_trial = {name: q * draw(st.sampled_from([D(0), D("0.5"), D(1)])) for name, q in usage.items()}
    return RatingInput(plan=plan, period=period, full_period_seconds=full.seconds, usage=usage, meters={},
                       subscription=subscription, usage_in_trial=in_trial), credit


@settings(max_examples=200, deadline=None)
@given(priced_periods())
def test_total_is_the_sum_of_rounded_lines(case: tuple[RatingInput, Decimal]) -> None:
    lines = rate(case[0])
    assert all(line.amount.as_tuple().exponent == -2 for line in lines)
    assert invoice_total(lines) == sum((line.amount for line in lines), D("0.00"))
    order = ["base_price", "add_on", "usage", "minimum_charge", "trial_credit"]
    assert [line.type for line in lines] == sorted((line.type for line in lines), key=order.index)


@settings(max_examples=200, deadline=None)
@given(priced_periods())
def test_a_trial_credit_never_makes_a_total_negative(case: tuple[RatingInput, Decimal]) -> None:
    inputs, credit = case
    lines = rate(inputs)
    assert invoice_total(lines) >= 0
    credits = [line for line in lines if line.type == "trial_credit"]
    if credits:
        subtotal = invoice_total([line for line in lines if line.type != "trial_credit"])
        assert credits[0].amount == -min(credit, subtotal)


@settings(max_examples=100, deadline=None)
@given(priced_periods())
def test_charging_immediately_moves_first_period_add_on_charges_without_changing_them(
    case: tuple[RatingInput, Decimal]
) -> None:
    inputs, _ = case
    assert inputs.subscription is not None
    plan = inputs.plan
    start = inputs.subscription.start_time
    first = RatingInput(
        plan=plan, period=period_at_index(start, plan.period, 0, inputs.subscription.end_time),
        full_period_seconds=period_at_index(start, plan.period, 0).seconds, usage={}, meters={},
        subscription=inputs.subscription,
    )
    deferred = plan.model_copy(update={"add_ons": [
        a.model_copy(update={"immediately_charge": False}) for a in plan.add_ons or []]})
    moved = immediate_charge_lines(plan, inputs.subscription) + [line for line in rate(first) if line.type == "add_on"]
    later = RatingInput(plan=deferred, period=first.period, full_period_seconds=first.full_period_seconds,
                        usage={}, meters={}, subscription=inputs.subscription)
    kept = [line for line in rate(later) if line.type == "add_on"]
    assert sorted((line.description, line.amount) for line in moved) == sorted(
        (line.description, line.amount) for line in kept
    )
