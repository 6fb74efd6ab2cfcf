"""The bench catalog: five counter meters, one three-component plan, N customers.

Entities are built as models and published directly (no whole-catalog rule check:
`parse_catalog` checks every subscription against all others, which is quadratic and
pointless for a catalog that is valid by construction).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.infra.catalog_view import Entity, publish
from services.settings import Settings
from shared.models import Customer, Meter, PricePlan, Subscription
from shared.plan_rules import plan_problems

PLAN_NAME = "bench-plan"
# One producer per chunk stays well inside librdkafka's default queue (100,000 records).
CHUNK = 20_000

METERS: list[dict[str, Any]] = [
    {"name": "api_calls", "meter_type": "COUNTER", "data_type": "INT", "aggregation": "SUM"},
    {"name": "requests", "meter_type": "COUNTER", "data_type": "INT", "aggregation": "COUNT"},
    {"name": "storage_gb", "meter_type": "COUNTER", "data_type": "FLOAT", "aggregation": "MAX"},
    {"name": "seats", "meter_type": "COUNTER", "data_type": "INT", "aggregation": "MAX"},
    {"name": "bandwidth_gb", "meter_type": "COUNTER", "data_type": "FLOAT", "aggregation": "SUM"},
]

# Three metered components, one of each common scheme, plus a base price.
PLAN: dict[str, Any] = {
    "name": PLAN_NAME,
    "period": "monthly",
    "base_price": 49.00,
    "metered_components": [
        {"meter_name": "api_calls", "meter_display_name": "API calls",
         "price_scheme": {"scheme_type": "TIERED", "prices": [
             {"price": 0.0, "cap": 10000}, {"price": 0.001, "cap": 100000}, {"price": 0.0005, "cap": None}]}},
        {"meter_name": "storage_gb", "meter_display_name": "Storage",
         "price_scheme": {"scheme_type": "FLAT", "prices": [{"price": 0.25}]}},
        {"meter_name": "seats", "meter_display_name": "Seats",
         "price_scheme": {"scheme_type": "VOLUME", "prices": [
             {"price": 10.0, "cap": 10}, {"price": 8.0, "cap": 100}, {"price": 6.0, "cap": None}]}},
    ],
}


def customer_name(index: int) -> str:
    return f"cust-{index:06d}"


def publish_bench_catalog(settings: Settings, bootstrap: str, customers: int, start: datetime) -> list[str]:
    """Publish meters, the plan and `customers` customers subscribed from `start`."""
    plan = PricePlan.model_validate(PLAN)
    assert plan_problems(plan) == [], plan_problems(plan)
    changes: list[tuple[str, str, Entity | None]] = []
    for raw in METERS:
        meter = Meter.model_validate(raw)
        changes.append(("meters", meter.name, meter))
    changes.append(("price_plans", plan.name, plan))
    names = [customer_name(i) for i in range(customers)]
    for name in names:
        changes.append(("customers", name, Customer.model_validate({"name": name})))
    for name in names:
        sub = Subscription(customer_name=name, price_plan_name=PLAN_NAME, start_time=start)
        changes.append(("subscriptions", sub.key, sub))
    for first in range(0, len(changes), CHUNK):
        publish(settings, bootstrap, changes[first:first + CHUNK])
    return names
