"""The dedup-memory phase (issue 11): aggregator memory with N unique ids in the dedup
window, deduplicating in bounded memory (METERING_DEDUP_IDS=store, dedup.py).

The store is seeded with N first carriers (raw rows written by ClickHouse itself from
`numbers(N)`, spread over 1,000 customers and the last 30 days) before the aggregator
starts, as if it had folded them; folding N measurements through the pipeline first
would take longer than the rest of the bench together. The aggregator then builds its id
filters from the store, and folds a stream of new measurements mixed with retries of
seeded ids: every retry must be recognised (dedup hits = retries sent) and the totals
must be exactly those of the new measurements.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import random
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Producer

from bench.catalog import customer_name, publish_bench_catalog
from bench.pipeline import LagReader, auth, bench_settings, store_totals
from bench.procs import memory_kib
from services.infra import topics
from services.infra.clickhouse_store import apply_migrations, connect
from services.infra.kafka_config import producer_config
from services.infra.partitioning import customer_partition
from services.infra.stack import Stack
from services.settings import Settings

log = logging.getLogger("bench")
CUSTOMERS = 1_000
SEEDED_OFFSETS = 10**12  # seeded positions lie far beyond any real offset of the run


def _seed(settings: Settings, ids: int) -> float:
    """N first carriers straight into the store (in a process of its own: the embedded
    engine lets one process own a data folder, and the aggregator needs it next)."""
    client = connect(settings)
    apply_migrations(client)
    partitions = [customer_partition(customer_name(i), settings.kafka.partitions) for i in range(CUSTOMERS)]
    began = time.time()
    client.command(
        "INSERT INTO measurements (customer_name, meter_name, id, series, value, string_value, event_time, "
        "labels, reset_total, topic, partition, offset, position) "
        "SELECT concat('cust-', leftPad(toString(number % {customers:UInt32}), 6, '0')), 'api_calls', "
        "concat('seed-', toString(number)), '', 1, '', now64(6) - toIntervalSecond(number % 2592000), map(), false, "
        "{topic:String}, {partitions:Array(UInt32)}[(number % {customers:UInt32}) + 1], "
        "{base:UInt64} + number, ({base:UInt64} + number) * 1048576 FROM numbers({ids:UInt64})",
        parameters={"customers": CUSTOMERS, "topic": topics.name(settings, topics.MEASUREMENTS),
                    "partitions": partitions, "base": SEEDED_OFFSETS, "ids": ids},
    )
    return time.time() - began


def _counters(stack: Stack) -> dict[str, float]:
    """Dedup hits and measurement outcomes from the aggregator's /metrics."""
    text = httpx.get(f"{stack.aggregator_url}/metrics", headers=auth(stack.settings), timeout=10).text
    found = {}
    for name, pattern in (("dedup_hits", r"metering_aggregator_dedup_hits_total"),
                          ("folded", r'metering_aggregator_events_total\{outcome="folded"\}'),
                          ("dead_lettered", r'metering_aggregator_events_total\{outcome="dead_lettered"\}')):
        match = re.search(rf"^{pattern} ([0-9.e+]+)$", text, flags=re.M)
        found[name] = float(match.group(1)) if match else 0.0
    return found


def measure(bootstrap: str, root: Path, ids: int, new: int = 100_000, retries: int = 50_000,
            timeout: float = 1800.0) -> dict[str, Any]:
    settings = bench_settings(bootstrap, root, "dedup").updated(limits={"dedup_ids": "store"})
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        seed_s = pool.apply(_seed, (settings, ids))
    now = datetime.now(UTC)
    rng = random.Random(5)
    with Stack(settings, log_dir=settings.data_dir / "logs") as stack:
        publish_bench_catalog(stack.settings, stack.bootstrap, CUSTOMERS, now - timedelta(days=40))
        pid = stack.children["aggregator"].pid
        loaded = memory_kib(pid)
        topic = topics.name(stack.settings, topics.MEASUREMENTS)
        at = now.isoformat()
        expected: dict[str, int] = {}
        batch: list[tuple[str, dict[str, Any]]] = []
        for i in range(new):
            customer = customer_name(i % CUSTOMERS)
            value = rng.randint(1, 9)
            expected[customer] = expected.get(customer, 0) + value
            batch.append((customer, {"id": f"new-{i}", "meter_name": "api_calls", "customer_name": customer,
                                     "value": value, "time": at}))
        for n in rng.sample(range(ids), retries):
            customer = customer_name(n % CUSTOMERS)
            batch.append((customer, {"id": f"seed-{n}", "meter_name": "api_calls", "customer_name": customer,
                                     "value": 1000, "time": at}))
        rng.shuffle(batch)
        producer = Producer(producer_config(stack.bootstrap, extra={"queue.buffering.max.messages": 1_000_000}))
        lag = LagReader(stack.bootstrap, f"{stack.settings.kafka.consumer_group_prefix}-aggregator", topic)
        began = time.time()
        for customer, measurement in batch:
            producer.produce(topic, json.dumps(measurement).encode(), customer.encode())
            producer.poll(0)
        assert producer.flush(120) == 0
        drained = lag.wait_zero(timeout)
        lag.close()
        counters = _counters(stack)
        hits = counters["dedup_hits"]
        sample = [customer_name(i) for i in range(0, CUSTOMERS, 50)]
        exact = sum(
            1 for customer in sample
            if sum(
                int(float(row["value"])) for row in store_totals(stack, customer) if row["meter_name"] == "api_calls"
            ) == expected[customer]
        )
        memory = memory_kib(stack.children["aggregator"].pid)
        restarted = stack.children["aggregator"].pid != pid
    result = {
        "ids_in_window": ids, "seed_seconds": seed_s, "new_measurements": new, "retries_of_old_ids": retries,
        "dedup_hits": hits, "retries_all_caught": hits == retries, "drained": drained is not None,
        # Every new measurement folded once, none dead-lettered: with the hits, nothing
        # counted twice even outside the sampled totals.
        "folded": counters["folded"], "dead_lettered": counters["dead_lettered"],
        "seconds": (drained or time.time()) - began,
        "rss_after_filters_mib": loaded.get("VmRSS", 0) / 1024,
        "peak_rss_mib": memory.get("VmHWM", 0) / 1024, "rss_mib": memory.get("VmRSS", 0) / 1024,
        "totals_checked": len(sample), "totals_exact": exact, "aggregator_restarted": restarted,
        "filter_mib_per_partition": settings.limits.dedup_filter_mib, "partitions": settings.kafka.partitions,
    }
    log.info("dedup memory: %s", result)
    return result
