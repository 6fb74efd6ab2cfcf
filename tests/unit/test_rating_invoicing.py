"""The rater's use of the rating engine: subscription lookup, trial totals, add-ons, corrections."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from services.rater.invoicing import invoice_for, subscription_for
from services.rater.ledger import Ledger
from shared.catalog import Catalog, parse_catalog
from shared.models.invoice import PeriodTotals
from tests.support.instants import utc

D = Decimal


JAN1, FEB1 = utc(2026, 1, 1), utc(2026, 2, 1)


def catalog(with_subscription: bool = True) -> Catalog:
    document: dict[str, Any] = {
        "meters": [{"name": "api_calls"}],
        "price_plans": [{
            "name": "trial-plan", "period": "monthly", "base_price": 31,
            "trial": {"time_length": 14, "time_unit_name": "day", "credit": 10},
            "add_ons": [{"feature": {"name": "sso", "display_name": "SSO"}, "price": 31, "price_scheme_type": "FLAT",
                         "single_use": False, "quantity_enabled": True}],
            "metered_components": [{"meter_name": "api_calls", "meter_display_name": "API calls",
                                    "price_scheme": {"scheme_type": "FLAT", "prices": [{"price": 0.01}]}}],
        }],
        "customers": [{"name": "acme"}],
        "subscriptions": [{"customer_name": "acme", "price_plan_name": "trial-plan",
                           "start_time": "2026-01-01T00:00:00Z",
                           "add_ons": [{"feature": "sso", "quantity": 2}]}] if with_subscription else [],
    }
    parsed, problems = parse_catalog(document)
    assert problems == []
    return parsed


def totals(calls: int, in_trial: int | None = None, reason: str = "closed") -> PeriodTotals:
    return PeriodTotals(
        customer_name="acme", price_plan_name="trial-plan", subscription_start=JAN1, period_index=0,
        period_start=JAN1, period_end=FEB1, reason=reason, watermark=FEB1,
        totals={"api_calls": {"": D(calls)}},
        trial_totals={"api_calls": {"": D(in_trial)}} if in_trial is not None else {},
    )


def test_trial_totals_are_subtracted_and_add_ons_charged() -> None:
    # 17 of 31 days paid: base 31 x 17/31 = 17.00; SSO 2 x 31 x 17/31 = 34.00;
    # usage (3000 - 1000) x 0.01 = 20.00; credit 10.00 -> 61.00
    invoice = invoice_for(totals(3000, 1000), catalog(), Ledger(), FEB1)
    assert invoice is not None
    assert [(line.type, str(line.amount)) for line in invoice.lines] == [
        ("base_price", "17.00"), ("add_on", "34.00"), ("usage", "20.00"), ("trial_credit", "-10.00")]
    assert str(invoice.total) == "61.00"


def test_period_totals_without_trial_totals_still_parse() -> None:
    raw = totals(5).model_dump_json(exclude={"trial_totals"})
    assert PeriodTotals.model_validate_json(raw).trial_totals == {}


def test_a_subscription_gone_from_the_catalog_is_rated_from_the_event() -> None:
    # No add-ons can be known, but the trial (plan + start) still applies.
    sub = subscription_for(totals(0), catalog(with_subscription=False))
    assert (sub.customer_name, sub.price_plan_name, sub.start_time, sub.add_ons) == ("acme", "trial-plan", JAN1, [])
    invoice = invoice_for(totals(3000, 1000), catalog(with_subscription=False), Ledger(), FEB1)
    assert invoice is not None
    assert [(line.type, str(line.amount)) for line in invoice.lines] == [
        ("base_price", "17.00"), ("usage", "20.00"), ("trial_credit", "-10.00")]


def test_late_trial_split_corrects_usage_and_keeps_the_credit() -> None:
    ledger = Ledger()
    first = invoice_for(totals(3000), catalog(), ledger, FEB1)  # the aggregator had not split the trial yet
    assert first is not None
    ledger.record(first)
    correction = invoice_for(totals(3000, 1000, reason="late_usage"), catalog(), ledger, FEB1)
    assert correction is not None
    assert [(line.type, line.quantity, str(line.amount)) for line in correction.lines] == [
        ("usage", D(-1000), "-10.00"),
    ]
