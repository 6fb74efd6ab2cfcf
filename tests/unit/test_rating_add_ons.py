"""Add-ons: price x quantity per price_frequency, single_use once, quantity_enabled false = 1,
immediately_charge on an invoice of its own and never again in the first period invoice,
and per-period add-ons pro-rated like the base price in a short final period.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Any

import pytest

from services.rater.invoicing import immediate_invoice_for
from services.rater.ledger import Ledger
from shared.add_ons import immediate_charge_lines, subscribed_add_ons
from shared.models import PricePlan, Subscription
from shared.models.invoice import invoice_id
from shared.periods import period_at_index
from shared.rating import RatingInput, rate
from tests.support.instants import utc

D = Decimal
JAN1 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)


def add_on(name: str, price: Any, **extra: Any) -> dict[str, Any]:
    return {"feature": {"name": name, "display_name": name.replace("_", " ").title()}, "price": price,
            "price_scheme_type": "FLAT", "single_use": False, "quantity_enabled": True, **extra}


ADD_ONS = [
    add_on("extra_seats", 10),
    add_on("sso", 25, quantity_enabled=False),
    add_on("setup", 100, single_use=True),
    add_on("support", 120, price_frequency="annual", quantity_enabled=False),
    add_on("onboarding", 50, single_use=True, immediately_charge=True),
    add_on("priority", 5, immediately_charge=True),
    add_on("reports", 3, price_frequency="quarterly"),
]


def plan(period: str = "monthly", **extra: Any) -> PricePlan:
    return PricePlan.model_validate({"name": "p", "period": period, "base_price": 20, "metered_components": [],
                                     "add_ons": ADD_ONS, **extra})


def sub(*add_ons: tuple[str, int], start: datetime = JAN1, end: datetime | None = None) -> Subscription:
    return Subscription(customer_name="acme", price_plan_name="p", start_time=start, end_time=end,
                        add_ons=[{"feature": f, "quantity": q} for f, q in add_ons])


def rated(price_plan: PricePlan, subscription: Subscription, index: int) -> list[tuple[str, str, Decimal, str]]:
    full = period_at_index(subscription.start_time, price_plan.period, index)
    period = period_at_index(subscription.start_time, price_plan.period, index, subscription.end_time)
    lines = rate(RatingInput(plan=price_plan, period=period, full_period_seconds=full.seconds, usage={}, meters={},
                             subscription=subscription))
    return [(line.type, line.description, line.quantity, str(line.amount)) for line in lines]


def test_per_period_add_on_is_price_times_quantity() -> None:
    assert rated(plan(), sub(("extra_seats", 3)), 0) == [
        ("base_price", "Base price", D(1), "20.00"), ("add_on", "Extra Seats", D(3), "30.00"),
    ]


def test_monthly_add_on_on_an_annual_plan_is_charged_twelve_times() -> None:
    # 3 seats x 12 months = 36 seat-months x 10 = 360.00
    monthly = plan("annual", add_ons=[add_on("extra_seats", 10, price_frequency="monthly")])
    assert rated(monthly, sub(("extra_seats", 3)), 0)[1] == ("add_on", "Extra Seats", D(36), "360.00")


def test_without_price_frequency_an_add_on_is_priced_per_plan_period() -> None:
    assert rated(plan("annual"), sub(("extra_seats", 3)), 0)[1] == ("add_on", "Extra Seats", D(3), "30.00")


def test_quarterly_add_on_on_an_annual_plan_four_times_and_on_a_monthly_plan_every_third_period() -> None:
    assert rated(plan("annual"), sub(("reports", 2)), 0)[1] == ("add_on", "Reports", D(8), "24.00")
    charged = [any(t == "add_on" for t, *_ in rated(plan(), sub(("reports", 2)), i)) for i in range(7)]
    assert charged == [True, False, False, True, False, False, True]


@pytest.mark.parametrize(("index", "charged"), [(0, True), (1, False), (11, False), (12, True)])
def test_annual_add_on_on_a_monthly_plan_in_the_first_period_of_each_year(index: int, charged: bool) -> None:
    lines = rated(plan(), sub(("support", 1)), index)
    assert (("add_on", "Support", D(1), "120.00") in lines) is charged
    assert len(lines) == (2 if charged else 1)


def test_quantity_enabled_false_forces_one() -> None:
    assert rated(plan(), sub(("sso", 5)), 0)[1] == ("add_on", "Sso", D(1), "25.00")


def test_single_use_is_charged_once_in_the_first_period() -> None:
    assert rated(plan(), sub(("setup", 2)), 0)[1] == ("add_on", "Setup", D(2), "200.00")
    assert rated(plan(), sub(("setup", 2)), 1) == [("base_price", "Base price", D(1), "20.00")]


def test_single_use_is_never_pro_rated() -> None:
    # A 7-day subscription with a 14-day trial: the base price is free, the one-off setup is not.
    p = plan(trial={"time_length": 14, "time_unit_name": "day"})
    assert rated(p, sub(("setup", 1), end=utc(2026, 1, 8)), 0) == [
        ("base_price", "Base price", D(0), "0.00"), ("add_on", "Setup", D(1), "100.00"),
    ]


def test_per_period_add_on_pro_rates_in_a_short_final_period() -> None:
    # February 2026 has 28 days; the subscription ends Feb 8: 7/28 = 0.25 of the month.
    # 3 seats x 0.25 = 0.75 seat-months x 10 = 7.50; base 20 x 0.25 = 5.00.
    subscription = sub(("extra_seats", 3), start=utc(2026, 2, 1), end=utc(2026, 2, 8))
    assert rated(plan(), subscription, 0) == [
        ("base_price", "Base price", D("0.25"), "5.00"), ("add_on", "Extra Seats", D("0.75"), "7.50"),
    ]


def test_a_plan_change_mid_period_pro_rates_the_old_subscription_final_period() -> None:
    # Old subscription from Jan 1 ends Mar 11 (plan change): its final period [Mar 1, Mar 11) is 10/31.
    subscription = sub(("extra_seats", 31), end=utc(2026, 3, 11))
    with localcontext() as ctx:
        ctx.prec = 80
        share = D(10) / D(31)
    # 31 seats x 10/31 x 10 = 100.00; base 20 x 10/31 = 6.4516... -> 6.45
    assert rated(plan(), subscription, 2) == [
        ("base_price", "Base price", share, "6.45"), ("add_on", "Extra Seats", 31 * share, "100.00"),
    ]


def test_recurring_add_ons_are_free_during_the_trial() -> None:
    p = plan(trial={"time_length": 1, "time_unit_name": "month"})
    assert rated(p, sub(("extra_seats", 2)), 0) == [
        ("base_price", "Base price", D(0), "0.00"), ("add_on", "Extra Seats", D(0), "0.00"),
    ]


def test_immediately_charged_add_ons_go_on_their_own_invoice_not_the_first_period() -> None:
    subscription = sub(("extra_seats", 1), ("onboarding", 1), ("priority", 2))
    immediate = immediate_charge_lines(plan(), subscription)
    assert [(line.type, line.description, line.quantity, str(line.amount)) for line in immediate] == [
        ("add_on", "Onboarding", D(1), "50.00"), ("add_on", "Priority", D(2), "10.00"),
    ]
    # The first period invoice does not charge them again...
    assert rated(plan(), subscription, 0) == [
        ("base_price", "Base price", D(1), "20.00"), ("add_on", "Extra Seats", D(1), "10.00"),
    ]
    # ...and from the second period the recurring one is a plain period charge; the one-off is gone.
    assert rated(plan(), subscription, 1) == [
        ("base_price", "Base price", D(1), "20.00"), ("add_on", "Extra Seats", D(1), "10.00"),
        ("add_on", "Priority", D(2), "10.00"),
    ]


def test_immediate_lines_follow_the_first_period_rules() -> None:
    # A recurring immediate add-on owes what period 0 would have charged: here a 7-day final period.
    subscription = sub(("priority", 4), start=utc(2026, 2, 1), end=utc(2026, 2, 8))
    immediate = immediate_charge_lines(plan(), subscription)
    assert [(line.quantity, str(line.amount)) for line in immediate] == [(D(1), "5.00")]


def test_no_immediate_add_ons_no_immediate_lines() -> None:
    assert immediate_charge_lines(plan(), sub(("extra_seats", 1))) == []
    assert immediate_invoice_for(plan(), sub(("extra_seats", 1)), Ledger(), NOW) is None


def test_the_immediate_invoice_is_issued_once() -> None:
    ledger = Ledger()
    subscription = sub(("onboarding", 1))
    invoice = immediate_invoice_for(plan(), subscription, ledger, NOW)
    assert invoice is not None
    assert (invoice.kind, invoice.revision, str(invoice.total)) == ("invoice", 0, "50.00")
    assert (invoice.period_start, invoice.period_end) == (JAN1, JAN1)
    assert invoice.invoice_id == invoice_id("acme", "p", JAN1, JAN1, 0)
    ledger.record(invoice)
    assert immediate_invoice_for(plan(), subscription, ledger, NOW) is None


def test_subscription_entries_for_one_feature_are_added_and_capped_by_the_add_on_limit() -> None:
    p = plan(add_ons=[add_on("extra_seats", 10, limit=4), add_on("sso", 25)])
    billed = subscribed_add_ons(p, sub(("extra_seats", 3), ("sso", 1), ("extra_seats", 2)))
    assert [(a.feature.name, q) for a, q in billed] == [("extra_seats", D(4)), ("sso", D(1))]


def test_add_ons_the_plan_does_not_offer_are_ignored() -> None:
    assert rated(plan(), sub(("ghost", 3)), 0) == [("base_price", "Base price", D(1), "20.00")]


def test_add_on_lines_follow_the_plan_order_not_the_subscription_order() -> None:
    lines = rated(plan(), sub(("reports", 1), ("sso", 1), ("extra_seats", 1)), 0)
    assert [d for t, d, _, _ in lines if t == "add_on"] == ["Extra Seats", "Sso", "Reports"]
