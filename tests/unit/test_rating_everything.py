"""One plan that uses every rating feature at once, with each invoice computed by hand.

Plan (monthly, anchored 2026-01-01, subscription ends 2026-03-08):
  base 31.00 "Platform fee"; plan minimum 150.00; trial 10 days, credit 40.00
  api_calls  TIERED [0.00 to 1,000; 0.01 to 10,000; 0.005 beyond], limit 50,000, minimum 2.00
  storage    GAUGE SUM, FLAT 0.50 per GB-day, watermark 31 GB-days
  seats      GAUGE MAX, VOLUME [10.00 up to 5; 8.00 beyond], watermark 3
  exports    PACKAGE 2.50 per 100
  add-ons    extra_seats 10.00 x2; sso 25.00 (quantity disabled, 3 asked -> 1);
             setup 100.00 single use; onboarding 50.00 single use, charged immediately
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from services.rater.invoicing import immediate_invoice_for, invoice_for
from services.rater.ledger import Ledger
from shared.catalog import Catalog, parse_catalog
from shared.entitlements import Entitlement, entitlements, exceeded_limits
from shared.models.invoice import PeriodTotals
from shared.periods import period_at_index
from shared.rating import RatingInput, invoice_total, rate
from tests.support.decimals import ratio, times
from tests.support.instants import utc

D = Decimal
DAY = 86400


def add_on(name: str, display: str, price: int, **extra: Any) -> dict[str, Any]:
    return {"feature": {"name": name, "display_name": display}, "price": price, "price_scheme_type": "FLAT",
            "single_use": False, "quantity_enabled": True, **extra}


CATALOG: dict[str, Any] = {
    "meters": [
        {"name": "api_calls"},
        {"name": "storage", "meter_type": "GAUGE", "aggregation": "SUM", "data_type": "FLOAT"},
        {"name": "seats", "meter_type": "GAUGE", "aggregation": "MAX"},
        {"name": "exports"},
    ],
    "price_plans": [{
        "name": "everything", "period": "monthly",
        "base_price": 31, "base_price_description": "Platform fee",
        "minimum_charge": 150,
        "trial": {"time_length": 10, "time_unit_name": "day", "credit": 40},
        "features": [{"name": "sso"}, {"name": "audit_log", "display_name": "Audit log"}],
        "limits": [{"feature": {"name": "api_calls", "display_name": "API calls"}, "limit": 40000},
                   {"feature": {"name": "projects"}, "limit": 5}],
        "metered_components": [
            {"meter_name": "api_calls", "meter_display_name": "API calls", "limit": 50000, "minimum_charge": 2,
             "price_scheme": {"scheme_type": "TIERED", "prices": [
                 {"price": 0, "cap": 1000}, {"price": 0.01, "cap": 10000}, {"price": 0.005, "cap": None}]}},
            {"meter_name": "storage", "meter_display_name": "Storage", "watermark": 31,
             "price_scheme": {"scheme_type": "FLAT", "time_unit_name": "day", "prices": [{"price": 0.5}]}},
            {"meter_name": "seats", "meter_display_name": "Seats", "watermark": 3,
             "price_scheme": {"scheme_type": "VOLUME", "prices": [{"price": 10, "cap": 5}, {"price": 8, "cap": None}]}},
            {"meter_name": "exports", "meter_display_name": "Exports",
             "price_scheme": {"scheme_type": "PACKAGE", "prices": [{"price": 2.5, "cap": 100}]}},
        ],
        "add_ons": [
            add_on("extra_seats", "Extra seats", 10),
            add_on("sso", "SSO", 25, quantity_enabled=False),
            add_on("setup", "Setup", 100, single_use=True),
            add_on("onboarding", "Onboarding", 50, single_use=True, immediately_charge=True),
        ],
    }],
    "customers": [{"name": "acme"}],
    "subscriptions": [{
        "customer_name": "acme", "price_plan_name": "everything",
        "start_time": "2026-01-01T00:00:00Z", "end_time": "2026-03-08T00:00:00Z",
        "add_ons": [{"feature": "extra_seats", "quantity": 2}, {"feature": "sso", "quantity": 3},
                    {"feature": "setup", "quantity": 1}, {"feature": "onboarding", "quantity": 1}],
    }],
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    parsed, problems = parse_catalog(CATALOG)
    assert problems == []
    return parsed


Line = tuple[str, str, Decimal, str]


def rated(catalog: Catalog, index: int, usage: dict[str, Any], in_trial: dict[str, Any] | None = None) -> list[Line]:
    plan = catalog.price_plans["everything"]
    [subscription] = catalog.subscriptions.values()
    full = period_at_index(subscription.start_time, plan.period, index)
    period = period_at_index(subscription.start_time, plan.period, index, subscription.end_time)
    lines = rate(RatingInput(
        plan=plan, period=period, full_period_seconds=full.seconds, meters=catalog.meters, subscription=subscription,
        usage={k: D(v) for k, v in usage.items()}, usage_in_trial={k: D(v) for k, v in (in_trial or {}).items()},
    ))
    return [(line.type, line.description, line.quantity, str(line.amount)) for line in lines]


def total(lines: list[Line]) -> Decimal:
    return sum((D(amount) for *_, amount in lines), D("0.00"))


# January: trial [Jan 1, Jan 11) -> 21 of 31 days paid.
JANUARY_USAGE = {"api_calls": 60000, "storage": 10 * 31 * DAY, "seats": 4, "exports": 250}
JANUARY_IN_TRIAL = {"api_calls": 5000, "storage": 10 * 10 * DAY, "seats": 0}
JANUARY: list[Line] = [
    ("base_price", "Platform fee", ratio(21, 31), "21.00"),  # 31 x 21/31
    ("add_on", "Extra seats", times(2, ratio(21, 31)), "13.55"),  # 10 x 2 x 21/31 = 13.548...
    ("add_on", "SSO", ratio(21, 31), "16.94"),  # 25 x 1 x 21/31 = 16.935...
    ("add_on", "Setup", D(1), "100.00"),  # single use, never pro-rated; onboarding is on its own invoice
    ("usage", "API calls", D(50000), "290.00"),  # 60,000 - 5,000 in trial, limit 50,000: 9,000 x 0.01 + 40,000 x 0.005
    ("usage", "Storage", D(210), "105.00"),  # 10 GB x 21 days = 210 GB-days x 0.50 (watermark 31 x 21/31 = 21 below)
    ("usage", "Seats", D(4), "40.00"),  # peak 4 after the trial, above 3 x 21/31; 4 <= 5: 4 x 10
    ("usage", "Exports", D(250), "7.50"),  # ceil(250 / 100) = 3 x 2.50
    # subtotal 593.99 >= minimum 150 x 21/31 = 101.61: no true-up
    ("trial_credit", "Trial credit", D(1), "-40.00"),  # first period ending after Jan 11
]

# February: 28 days, no trial; low usage, so the watermarks, the component minimum and the true-up show.
FEBRUARY_USAGE = {"api_calls": 500, "seats": 2}
FEBRUARY: list[Line] = [
    ("base_price", "Platform fee", D(1), "31.00"),
    ("add_on", "Extra seats", D(2), "20.00"),
    ("add_on", "SSO", D(1), "25.00"),
    ("usage", "API calls", D(500), "2.00"),  # all in the free tier: 0.00, raised to the 2.00 minimum
    ("usage", "Storage", D(31), "15.50"),  # nothing stored: the 31 GB-day watermark x 0.50
    ("usage", "Seats", D(3), "30.00"),  # peak 2, watermark 3 x 10
    ("usage", "Exports", D(0), "0.00"),
    ("minimum_charge", "Minimum charge true-up", D(1), "26.50"),  # 150.00 - 123.50
]

# March: the subscription ends Mar 8, a 7-day final period of 31; no usage at all.
MARCH: list[Line] = [
    ("base_price", "Platform fee", ratio(7, 31), "7.00"),  # 31 x 7/31
    ("add_on", "Extra seats", times(2, ratio(7, 31)), "4.52"),  # 10 x 2 x 7/31 = 4.516...
    ("add_on", "SSO", ratio(7, 31), "5.65"),  # 25 x 7/31 = 5.645...
    ("usage", "API calls", D(0), "0.45"),  # minimum 2 x 7/31 = 0.451...
    ("usage", "Storage", times(31, ratio(7, 31)), "3.50"),  # watermark 31 x 7/31 = 7 GB-days x 0.50
    ("usage", "Seats", times(3, ratio(7, 31)), "6.77"),  # watermark 3 x 7/31 = 0.677... seats x 10
    ("usage", "Exports", D(0), "0.00"),
    ("minimum_charge", "Minimum charge true-up", D(1), "5.98"),  # 150 x 7/31 = 33.87 - 27.89
]


def test_january_trial_period(catalog: Catalog) -> None:
    lines = rated(catalog, 0, JANUARY_USAGE, JANUARY_IN_TRIAL)
    assert lines == JANUARY
    assert total(lines) == D("553.99")  # 593.99 - 40.00


def test_february_full_period(catalog: Catalog) -> None:
    lines = rated(catalog, 1, FEBRUARY_USAGE)
    assert lines == FEBRUARY
    assert total(lines) == D("150.00")


def test_march_short_final_period(catalog: Catalog) -> None:
    lines = rated(catalog, 2, {})
    assert lines == MARCH
    assert total(lines) == D("33.87")


def test_the_immediate_invoice(catalog: Catalog) -> None:
    plan = catalog.price_plans["everything"]
    [subscription] = catalog.subscriptions.values()
    invoice = immediate_invoice_for(plan, subscription, Ledger(), utc(2026, 1, 1))
    assert invoice is not None
    assert [(line.type, line.description, line.quantity, str(line.amount)) for line in invoice.lines] == [
        ("add_on", "Onboarding", D(1), "50.00")]
    assert str(invoice.total) == "50.00"


def test_january_through_the_rater_with_trial_totals(catalog: Catalog) -> None:
    # The aggregator's event: per-series totals and the trial's part of them.
    event = PeriodTotals(
        customer_name="acme", price_plan_name="everything", subscription_start=utc(2026, 1, 1), period_index=0,
        period_start=utc(2026, 1, 1), period_end=utc(2026, 2, 1), reason="closed", watermark=utc(2026, 2, 1, 1),
        totals={"api_calls": {"region=eu": D(40000), "region=us": D(20000)}, "storage": {"": D(10 * 31 * DAY)},
                "seats": {"": D(4)}, "exports": {"": D(250)}},
        trial_totals={"api_calls": {"region=eu": D(4000), "region=us": D(1000)}, "storage": {"": D(10 * 10 * DAY)}},
    )
    ledger = Ledger()
    invoice = invoice_for(event, catalog, ledger, utc(2026, 2, 1, 1))
    assert invoice is not None
    assert [(line.type, line.description, line.quantity, str(line.amount)) for line in invoice.lines] == JANUARY
    assert str(invoice.total) == "553.99"
    ledger.record(invoice)
    # Late usage after the trial: 1,000 more exports -> 13 packages; the credit and the rest stand.
    late = event.model_copy(update={"reason": "late_usage", "totals": {**event.totals, "exports": {"": D(1250)}}})
    correction = invoice_for(late, catalog, ledger, utc(2026, 2, 2))
    assert correction is not None
    assert [(line.type, line.quantity, str(line.amount)) for line in correction.lines] == [("usage", D(1000), "25.00")]


def test_entitlements_of_the_subscription(catalog: Catalog) -> None:
    plan = catalog.price_plans["everything"]
    [subscription] = catalog.subscriptions.values()
    usage = {k: D(v) for k, v in JANUARY_USAGE.items()}
    assert entitlements(plan, subscription, usage) == [
        Entitlement("feature", "sso", "sso"),
        Entitlement("feature", "audit_log", "Audit log"),
        Entitlement("add_on", "extra_seats", "Extra seats", quantity=D(2)),
        Entitlement("add_on", "sso", "SSO", quantity=D(1)),
        Entitlement("add_on", "setup", "Setup", quantity=D(1)),
        Entitlement("add_on", "onboarding", "Onboarding", quantity=D(1)),
        Entitlement("limit", "api_calls", "API calls", limit=D(40000), usage=D(60000)),
        Entitlement("limit", "projects", "projects", limit=D(5)),  # no component meters "projects"
    ]
    assert [e.feature for e in exceeded_limits(plan, subscription, usage)] == ["api_calls"]


def test_the_invoices_add_up(catalog: Catalog) -> None:
    month = rate(RatingInput(
        plan=catalog.price_plans["everything"], period=period_at_index(utc(2026, 1, 1), "monthly", 1),
        full_period_seconds=28 * DAY, usage={k: D(v) for k, v in FEBRUARY_USAGE.items()}, meters=catalog.meters,
        subscription=next(iter(catalog.subscriptions.values())),
    ))
    assert invoice_total(month) == sum((line.amount for line in month), D(0)) == D("150.00")
