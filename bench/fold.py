"""The fold phase: how fast the aggregator folds measurements that arrive as envelopes on
the measurements topic (the Kafka-native path, issue 11), beside the raw consume ceiling.

A running pipeline with N customers on the bench plan. A backlog of measurements (every
customer, the five counter meters in turn, every id unique) is packed by partition into
envelopes of 1,000, exactly as the ingest service packs them (`services/ingest/envelopes.py`),
and written to the measurements topic in one go: producing is far faster than folding, so
the clock measures the aggregator. Measured: measurements from the first produce to a zero
committed lag (the aggregator commits only after the batch's store and state writes), then
the stored totals of a sample of customers checked against what was produced.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from bench.catalog import METERS, publish_bench_catalog
from bench.pipeline import aggregator_lag, bench_settings, produce_all, store_totals, wait_accepted
from bench.procs import CpuMeter, cpu_seconds, memory_kib, python_thread_cpu_seconds
from services.infra import native, topics
from services.infra.kafka_config import producer_config
from services.infra.stack import Stack
from services.ingest.envelopes import pack
from shared.models.json_types import format_utc

log = logging.getLogger("bench")

# A value per meter that exercises the fold of its aggregation (SUM, COUNT, MAX).
VALUES = {"api_calls": 3, "requests": 1, "storage_gb": "12.5", "seats": 7, "bandwidth_gb": "0.75"}


def _records(customers: list[str], count: int, event_time: str) -> tuple[list[tuple[bytes, bytes]], dict[str, int]]:
    """`count` measurements as (key, value) records, and how many api_calls each customer got."""
    api_calls: dict[str, int] = defaultdict(int)
    records = []
    meters = [m["name"] for m in METERS]
    for i in range(count):
        customer = customers[i % len(customers)]
        meter = meters[(i // len(customers)) % len(meters)]
        value = VALUES[meter]
        if meter == "api_calls":
            api_calls[customer] += int(value)
        literal = f'"{value}"' if isinstance(value, str) else str(value)
        records.append((customer.encode(), (
            f'{{"id":"fold-{i}","meter_name":"{meter}","customer_name":"{customer}",'
            f'"value":{literal},"time":"{event_time}"}}').encode()))
    return records, dict(api_calls)


def measure(bootstrap: str, root: Path, customers: int, measurements: int, timeout: float,
            profile: Any = None, dedup_ids: str = "auto") -> dict[str, Any]:
    """`dedup_ids`: METERING_DEDUP_IDS (auto means state-log on the embedded engine)."""
    settings = bench_settings(bootstrap, root, "fold").updated(limits={"dedup_ids": dedup_ids})
    start = datetime.now(UTC) - timedelta(days=1)
    with Stack(settings, log_dir=settings.data_dir / "logs") as stack:
        names = publish_bench_catalog(stack.settings, stack.bootstrap, customers, start)
        event_time = format_utc(datetime.now(UTC).replace(microsecond=0))
        wait_accepted(stack, names[-1], "fold", event_time)
        topic = topics.name(stack.settings, topics.MEASUREMENTS)
        lag = aggregator_lag(stack)
        try:
            if lag.wait_zero(120) is None:
                raise RuntimeError("fold phase: the aggregator never caught up before the backlog")
            records, api_calls = _records(names, measurements, event_time)
            envelopes = pack(records, stack.settings.kafka.partitions)
            aggregator = stack.children["aggregator"].pid
            cpu = CpuMeter({"aggregator": aggregator})
            cpu_before, python_before = cpu_seconds(aggregator), python_thread_cpu_seconds(aggregator)
            if profile is not None:
                profile({"aggregator": aggregator}, measurements / 20_000 + 5)
            producer = Producer(producer_config(stack.bootstrap, extra={"compression.type": "lz4"}))
            began = time.time()
            produced = produce_all(producer, topic, envelopes, "fold phase: envelopes")
            drained = lag.wait_zero(timeout, interval=0.1)
            remaining = 0 if drained is not None else lag.lag()
            cores = cpu.cores()
            # Where the CPU went: the interpreter's threads (the fold, the store's Arrow
            # tables, the Kafka client) and the rest (the engine's own threads: inserts, merges).
            cpu_spent = cpu_seconds(aggregator) - cpu_before
            python_spent = python_thread_cpu_seconds(aggregator) - python_before
        finally:
            lag.close()
        end = drained if drained is not None else time.time()
        sample = names[:: max(len(names) // 100, 1)]
        exact = 0
        for name in sample:
            rows = store_totals(stack, name)
            stored = sum(Decimal(r["value"]) for r in rows if r["meter_name"] == "api_calls")
            # + 0: the readiness probe wait_accepted sent for the last customer had value 0.
            if stored == api_calls.get(name, 0):
                exact += 1
            else:
                log.warning("fold: %s stored %s api_calls, produced %s", name, stored, api_calls.get(name, 0))
        memory = memory_kib(aggregator)
    return {
        "measurements": measurements, "envelopes": len(envelopes), "customers": customers, "dedup_ids": dedup_ids,
        # Lag counts records: without a drain, the envelopes still unread are taken as full.
        "per_s": (measurements - remaining * 1_000) / (end - began),
        "seconds": end - began, "produce_seconds": produced - began, "drained": drained is not None,
        "not_folded_at_timeout": remaining, "totals_checked": len(sample), "totals_exact": exact,
        "aggregator_cpu_cores": cores["aggregator"], "peak_rss_mib": memory.get("VmHWM", 0) / 1024,
        "cpu_us_per_measurement": cpu_spent / measurements * 1e6,
        "python_threads_cpu_us_per_measurement": python_spent / measurements * 1e6,
        "hot_path": native.describe(),  # compiled or not (services/infra/native.py)
    }
