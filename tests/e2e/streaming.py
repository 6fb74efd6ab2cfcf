"""Driving the aggregator through Kafka as a producer would, and reading its store."""

from __future__ import annotations

import contextlib
import json
import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from confluent_kafka import Producer

from services.infra.stack import Stack
from shared.periods import Period, add_months, period_at_index
from tests.support.oracle import MeterSpec

KINDS = [
    ("COUNTER", "SUM", True), ("COUNTER", "COUNT", True), ("COUNTER", "MAX", True), ("COUNTER", "MIN", True),
    ("COUNTER", "UNIQUE_COUNT", True), ("COUNTER", "SUM", False), ("COUNTER", "MAX", False),
    ("GAUGE", "SUM", False), ("GAUGE", "MAX", False), ("GAUGE", "MIN", False), ("GAUGE", "SUM", True),
]


def scenario_catalog(customer: str, meters: list[MeterSpec], start: datetime) -> dict[str, Any]:
    return {
        "meters": [m.as_catalog() for m in meters],
        "price_plans": [{
            "name": f"plan-{customer}", "period": "monthly",
            "metered_components": [
                {"meter_name": m.name, "meter_display_name": m.name,
                 "price_scheme": {"scheme_type": "FLAT", "prices": [{"price": 0.01}]}}
                for m in meters
            ],
        }],
        "customers": [{"name": customer}],
        "subscriptions": [{"customer_name": customer, "price_plan_name": f"plan-{customer}",
                           "start_time": start.isoformat()}],
    }


def subscription_window(now: datetime) -> tuple[datetime, list[Period]]:
    """A subscription whose first period ended 10 days ago: two periods inside the window."""
    start = add_months(now - timedelta(days=10), -1)
    return start, [period_at_index(start, "monthly", 0), period_at_index(start, "monthly", 1)]


def measurements(
    rng: random.Random, customer: str, meters: list[MeterSpec], count: int, now: datetime
) -> list[dict[str, Any]]:
    out = []
    for i in range(count):
        meter = rng.choice(meters)
        at = now - timedelta(seconds=rng.randint(60, 30 * 86400), microseconds=rng.randint(0, 999999))
        value = rng.randint(-5, 50) if meter.meter_type == "GAUGE" and meter.is_incremental else rng.randint(0, 500)
        record: dict[str, Any] = {
            "id": f"{meter.name}-{i}", "meter_name": meter.name, "customer_name": customer,
            "value": value, "time": at.isoformat(), "labels": {"region": rng.choice(["eu", "us"])},
        }
        if meter.meter_type == "COUNTER" and not meter.is_incremental and rng.random() < 0.1:
            record["reset_total"] = True
        out.append(record)
    return out


def delivery_order(rng: random.Random, records: list[dict[str, Any]], duplicate_share: float) -> list[dict[str, Any]]:
    """Shuffled, with some records delivered more than once (identical retries)."""
    copies = records + [r for r in records if rng.random() < duplicate_share]
    rng.shuffle(copies)
    return copies


def produce(bootstrap: str, topic: str, records: list[dict[str, Any]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                         "partitioner": "murmur2_random", "linger.ms": 5, "compression.type": "lz4"})
    for record in records:
        producer.produce(topic, key=record["customer_name"].encode(), value=json.dumps(record).encode())
        producer.poll(0)
    assert producer.flush(30) == 0


def stored_totals(stack: Stack, customer: str) -> dict[tuple[str, str, datetime], Decimal]:
    response = httpx.get(f"{stack.aggregator_url}/store/totals", params={"customer_name": customer},
                         headers=auth(stack), timeout=30)
    response.raise_for_status()
    return {
        (row["meter_name"], row["series"], datetime.fromisoformat(row["period_start"])): Decimal(row["value"])
        for row in response.json()
    }


def auth(stack: Stack) -> dict[str, str]:
    key = stack.settings.http.api_key
    return {} if key is None else {"Authorization": f"Bearer {key.get_secret_value()}"}


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def await_totals(stack: Stack, customer: str, expected: dict[Any, Decimal], timeout: float) -> dict[Any, Decimal]:
    """The customer's stored totals once they equal `expected`, or the last seen at timeout."""
    deadline = time.monotonic() + timeout
    stored: dict[Any, Decimal] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):  # the aggregator is restarting
            stored = stored_totals(stack, customer)
        if stored == expected:
            return stored
        time.sleep(0.5)
    return stored
