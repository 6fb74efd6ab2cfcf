"""Entitlements: features, add-ons and limits with usage; which limits are exceeded, reported once."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from shared.entitlements import Entitlement, LimitExceeded, entitlements, exceeded_limits, limit_exceeded_events
from shared.models import PricePlan, Subscription
from shared.periods import period_at_index

D = Decimal
JAN1 = datetime(2026, 1, 1, tzinfo=UTC)
JANUARY = period_at_index(JAN1, "monthly", 0)


def component(meter: str) -> dict[str, Any]:
    return {"meter_name": meter, "meter_display_name": meter,
            "price_scheme": {"scheme_type": "FLAT", "prices": [{"price": 1}]}}


PLAN = PricePlan.model_validate({
    "name": "p", "period": "monthly",
    "metered_components": [component("api_calls"), component("seats")],
    "features": [{"name": "sso", "display_name": "Single sign-on"}],
    "add_ons": [{"feature": {"name": "extra_seats"}, "price": 10, "price_scheme_type": "FLAT",
                 "single_use": False, "quantity_enabled": True},
                {"feature": {"name": "audit"}, "price": 5, "price_scheme_type": "FLAT",
                 "single_use": False, "quantity_enabled": False}],
    "limits": [{"feature": {"name": "api_calls"}, "limit": 1000},
               {"feature": {"name": "seats"}, "limit": 10},
               {"feature": {"name": "API_CALLS"}, "limit": 1},
               {"feature": {"name": "projects"}, "limit": 3}],
})
SUB = Subscription(customer_name="acme", price_plan_name="p", start_time=JAN1,
                   add_ons=[{"feature": "audit", "quantity": 4}])


def test_lists_features_add_ons_and_limits_with_usage() -> None:
    assert entitlements(PLAN, SUB, {"api_calls": D(1500)}) == [
        Entitlement("feature", "sso", "Single sign-on"),
        Entitlement("add_on", "audit", "audit", quantity=D(1)),  # quantity disabled: 1, not 4
        Entitlement("limit", "api_calls", "api_calls", limit=D(1000), usage=D(1500)),
        Entitlement("limit", "seats", "seats", limit=D(10), usage=D(0)),  # metered, nothing reported: 0
        Entitlement("limit", "API_CALLS", "API_CALLS", limit=D(1)),  # names match exactly, case and all
        Entitlement("limit", "projects", "projects", limit=D(3)),  # no component meters it: no usage
    ]


def test_exceeded_means_strictly_above() -> None:
    assert [e.feature for e in exceeded_limits(PLAN, SUB, {"api_calls": D(1000), "seats": D(11)})] == ["seats"]
    assert exceeded_limits(PLAN, SUB, {"api_calls": D(1000), "seats": D(10)}) == []
    assert [e.feature for e in exceeded_limits(PLAN, SUB, {"api_calls": D("1000.001")})] == ["api_calls"]


def test_a_limit_without_usage_is_never_exceeded() -> None:
    assert not Entitlement("limit", "projects", "projects", limit=D(3)).exceeded
    assert not Entitlement("add_on", "x", "x", quantity=D(99), limit=D(1), usage=D(5)).exceeded


def test_limit_exceeded_events_once_per_customer_feature_and_period() -> None:
    usage = {"api_calls": D(1500), "seats": D(12)}
    events = limit_exceeded_events(PLAN, SUB, JANUARY, usage)
    assert events == [
        LimitExceeded("acme", "api_calls", JANUARY.start, JANUARY.end, D(1000), D(1500)),
        LimitExceeded("acme", "seats", JANUARY.start, JANUARY.end, D(10), D(12)),
    ]
    reported = {e.key for e in events}
    assert limit_exceeded_events(PLAN, SUB, JANUARY, {"api_calls": D(2000), "seats": D(13)}, reported) == []
    february = period_at_index(JAN1, "monthly", 1)
    assert [e.key for e in limit_exceeded_events(PLAN, SUB, february, usage, reported)] == [
        ("acme", "api_calls", february.start), ("acme", "seats", february.start)]


def test_a_plan_without_features_add_ons_or_limits_has_no_entitlements() -> None:
    bare = PricePlan.model_validate({"name": "b", "period": "monthly", "metered_components": []})
    assert entitlements(bare, SUB, {}) == []
