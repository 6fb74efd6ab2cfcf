"""The hostile-load phase: how fast the aggregator dead-letters hostile records while it
still folds the valid measurements mixed in with them (issue 13).

A backlog of seeded records from bench/hostile.py (about two thirds bad: wrong types, huge
and tiny numbers, invalid UTF-8, unknown names and, in the heavy mix, deep nesting,
oversized envelopes and 1 MB records; the rest valid, alone or inside mixed envelopes) is
written to the measurements topic, then the aggregator drains it. Measured: records, dead letters and valid
measurements per second from the first record to a zero consumer lag, with the stored
totals checked exact against the valid measurements.
"""

from __future__ import annotations

import logging
import random
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from bench.hostile import HostileRecords, Target
from bench.pipeline import LagReader, bench_settings, store_totals
from services.infra import topics
from services.infra.catalog_view import publish_catalog
from services.infra.kafka_config import producer_config
from services.infra.stack import Stack
from shared.catalog import parse_catalog

log = logging.getLogger("bench")


def _catalog(customer: str, meters: dict[str, str], start: datetime) -> dict[str, Any]:
    return {
        "meters": [{"name": name, "aggregation": aggregation, "data_type": "INT", "primary_labels": ["region"]}
                   for name, aggregation in meters.items()],
        "price_plans": [{"name": f"plan-{customer}", "period": "monthly", "metered_components": [
            {"meter_name": name, "meter_display_name": name,
             "price_scheme": {"scheme_type": "FLAT", "prices": [{"price": 0.01}]}} for name in meters]}],
        "customers": [{"name": customer}],
        "subscriptions": [{"customer_name": customer, "price_plan_name": f"plan-{customer}",
                           "start_time": start.isoformat()}],
    }


def _expected(valid: list[dict[str, Any]], meters: dict[str, str]) -> dict[str, Decimal]:
    values: dict[str, list[int]] = defaultdict(list)
    for m in valid:
        values[m["meter_name"]].append(int(m["value"]))
    totals = {}
    for name, aggregation in meters.items():
        got = values.get(name)
        if got:
            folded = sum(got) if aggregation == "SUM" else max(got) if aggregation == "MAX" else len(set(got))
            totals[name] = Decimal(folded)
    return totals


def measure(bootstrap: str, root: Path, records: int, heavy: bool, seed: int = 13,
            timeout: float = 900.0) -> dict[str, Any]:
    settings = bench_settings(bootstrap, root, "hostile_heavy" if heavy else "hostile_small")
    now = datetime.now(UTC).replace(microsecond=0)
    customer = "hostile-target"
    meters = {f"{customer}-sum": "SUM", f"{customer}-max": "MAX", f"{customer}-uniq": "UNIQUE_COUNT"}
    catalog, problems = parse_catalog(_catalog(customer, meters, now - timedelta(days=10)))
    assert problems == [], problems
    names = list(meters)
    generator = HostileRecords(random.Random(seed), Target(customer, names[0], names[1], names[2], now), heavy)
    backlog = [generator.record() for _ in range(records)]
    valid = [m for h in backlog for m in h.valid]
    dead = sum(len(h.dead) for h in backlog)
    size = sum(len(h.value or b"") + len(h.key or b"") for h in backlog)
    with Stack(settings, log_dir=settings.data_dir / "logs") as stack:
        publish_catalog(stack.settings, stack.bootstrap, catalog)
        topic = topics.name(stack.settings, topics.MEASUREMENTS)
        pid = stack.children["aggregator"].pid
        lag = LagReader(stack.bootstrap, f"{stack.settings.kafka.consumer_group_prefix}-aggregator", topic)
        producer = Producer(producer_config(stack.bootstrap, linger_ms=20, extra={"message.max.bytes": 1_048_000}))
        began = time.time()
        for h in backlog:
            producer.produce(topic, key=h.key, value=h.value)
            producer.poll(0)
        assert producer.flush(120) == 0
        produced = time.time()
        drained = lag.wait_zero(timeout)
        lag.close()
        assert drained is not None, f"the aggregator did not drain {records} hostile records in {timeout:.0f}s"
        expected = _expected(valid, meters)
        stored: dict[str, Decimal] = {}
        for row in store_totals(stack, customer):
            stored[row["meter_name"]] = stored.get(row["meter_name"], Decimal(0)) + Decimal(row["value"])
        restarted = stack.children["aggregator"].pid != pid
    seconds = drained - began
    result = {
        "records": records, "megabytes": size / 1e6, "dead_letters": dead, "valid_measurements": len(valid),
        "produce_seconds": produced - began, "seconds": seconds,
        "records_per_s": records / seconds, "dead_letters_per_s": dead / seconds, "valid_per_s": len(valid) / seconds,
        "totals_checked": len(expected), "totals_exact": stored == expected, "aggregator_restarted": restarted,
    }
    log.info("hostile (%s): %s", "heavy" if heavy else "small", result)
    return result
