"""Catalog documents for tests, built around the worked example of semantics.md."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.demo import GROWTH_PLAN


def worked_example_catalog(start: datetime, customers: tuple[str, ...] = ("acme",)) -> dict[str, Any]:
    iso = start.isoformat().replace("+00:00", "Z")
    return {
        "meters": [{"name": "api_calls", "meter_type": "COUNTER", "data_type": "INT", "aggregation": "SUM"}],
        "price_plans": [GROWTH_PLAN],
        "customers": [{"name": name} for name in customers],
        "subscriptions": [
            {"customer_name": name, "price_plan_name": "growth-plan", "start_time": iso} for name in customers
        ],
    }
