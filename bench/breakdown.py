"""Where the time and the memory go, without Kafka, HTTP or ClickHouse in the way.

`python -m bench.breakdown` prints:
- the ingest service's CPU per measurement, stage by stage (JSON parse, model
  validation, judging against the catalog, record serialisation), for batches of
  1,000 like the bench's;
- the aggregator's CPU per measurement in `Processor.process` (parse, judge, fold,
  with plain dicts for the state, so no state-log cost);
- the aggregator's CPU per measurement by step for envelopes of 1,000 in the worker's
  slices, with the state log (prepare, process, totals rows, state-log encoding; the
  store's Arrow tables are `bench.hot_path_parts`, Kafka is the fold phase's);
- the aggregator's memory per series with its id (the state log's dicts, tracemalloc), and the
  memory of a catalog of 100,000 customers and subscriptions;
- how long the judge takes for a measurement right after a catalog change (a sign-up)
  with 100,000 customers: its index follows the catalog's revision.
The full bench (`python -m bench`) measures the same paths end to end; this splits them.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
import tracemalloc
from collections.abc import MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.catalog import METERS, PLAN, PLAN_NAME, customer_name
from bench.fold import _records as fold_records
from services.aggregator.batches import slices
from services.aggregator.closing import Closer, SeriesIndex, Watermarks
from services.aggregator.dedup import Dedup, LogDedup, StoreDedup
from services.aggregator.processing import Processor, Record
from services.aggregator.projection import Projection
from services.aggregator.state_log import StateLog
from services.aggregator.worker import GC_THRESHOLDS
from services.ingest.envelopes import pack
from services.ingest.measurement_routes import record_of
from services.ingest.validation import judge, parse_body, parse_measurement
from services.settings import SLICE_BYTES
from shared.catalog import Catalog
from shared.models import Customer, Meter, PricePlan, Subscription
from shared.resolution import CatalogIndexes, Limits

LIMITS = Limits(max_future=timedelta(minutes=5), dedup_window=timedelta(days=30))
START = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def bench_catalog(customers: int) -> Catalog:
    catalog = Catalog()
    for raw in METERS:
        catalog.put(Meter.model_validate(raw))
    catalog.put(PricePlan.model_validate(PLAN))
    for index in range(customers):
        name = customer_name(index)
        # Through JSON, as every service's catalog view reads them from the topic.
        catalog.put(Customer.model_validate_json(json.dumps({"name": name})))
        subscription = Subscription(customer_name=name, price_plan_name=PLAN_NAME, start_time=START)
        catalog.put(Subscription.model_validate_json(subscription.model_dump_json(exclude_none=True)))
    return catalog


def event_time() -> str:
    return (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ingest_cpu(catalog: Catalog, rounds: int = 50) -> dict[str, float]:
    at = event_time()
    body = json.dumps([
        {"id": f"b-{i}", "meter_name": "api_calls", "customer_name": customer_name(i % 1000), "value": 1, "time": at}
        for i in range(1000)
    ], separators=(",", ":")).encode()
    totals = {"json": 0.0, "validate": 0.0, "judge": 0.0, "serialise": 0.0}
    for round_ in range(rounds + 5):
        now = datetime.now(UTC)
        t0 = time.perf_counter()
        raw = parse_body(body)
        t1 = time.perf_counter()
        parsed = [m for m, _ in (parse_measurement(item, i) for i, item in enumerate(raw)) if m is not None]
        t2 = time.perf_counter()
        facts, errors = judge(parsed, catalog, now, LIMITS)
        assert not errors, errors[:3]
        t3 = time.perf_counter()
        for measurement, fact in zip(parsed, facts, strict=True):
            record_of(measurement, fact, now)
        t4 = time.perf_counter()
        if round_ >= 5:  # warm-up first
            for key, seconds in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                totals[key] += seconds
    return {key: seconds / (rounds * 1000) * 1e6 for key, seconds in totals.items()}


def records(customers: range, at: str, first_offset: int) -> list[Record]:
    out = []
    offset = first_offset
    now = datetime.now(UTC)
    for index in customers:
        name = customer_name(index)
        for meter in METERS:
            offset += 1
            value = json.dumps({"id": f"m-{offset}", "meter_name": meter["name"], "customer_name": name,
                                "value": "1", "time": at, "labels": {}, "reset_total": False},
                               separators=(",", ":")).encode()
            out.append(Record("measurements", 0, offset, name.encode(), value, now))
    return out


def processor(catalog: Catalog, series: MutableMapping[str, Any], seen: Dedup) -> Processor:
    return Processor(
        catalog=lambda: catalog, refresh_catalog=lambda: None, limits=LIMITS, series=series, dedup=seen,
        closed_through=lambda customer, key: 0,
    )


def aggregator_cpu(catalog: Catalog, customers: int) -> float:
    series: dict[str, Any] = {}
    seen = StoreDedup(filter_bytes=16 * 1024 * 1024, recent_capacity=200_000)
    process = processor(catalog, series, seen).process
    at = event_time()
    batches = [records(range(first, min(first + 400, customers)), at, first * 10) for first in range(0, customers, 400)]
    started = time.perf_counter()
    count = 0
    for batch in batches:
        process(batch)
        count += len(batch)
    return (time.perf_counter() - started) / count * 1e6


def aggregator_stages(catalog: Catalog, measurements: int = 400_000, customers: int = 1000) -> dict[str, float]:
    """CPU µs per measurement of each step the worker takes per slice, for envelopes of 1,000
    as the fold phase writes them (1,000 customers, the five meters in turn, ids unique),
    in slices of the worker's default SLICE_BYTES, with the state log's own dicts and ids:
    decoding and judging (`prepare`), dedup and fold (`process`), the totals rows, and
    encoding the state log (its records handed to a send that keeps nothing: no Kafka)."""
    names = [customer_name(i) for i in range(customers)]
    envelopes = pack(fold_records(names, measurements, event_time())[0], 1)
    now = datetime.now(UTC)
    records = [Record("measurements", 0, offset, key, value, now) for offset, (key, value) in enumerate(envelopes)]
    state = StateLog(partitions=1, partition_of=lambda customer: 0)
    closer = Closer(
        catalog=lambda: catalog, series=state.series, marks=state.marks, index=SeriesIndex(),
        watermarks=Watermarks(lateness=timedelta(0), idle=timedelta(0)), grace=timedelta(0), partitions=1,
        started=now,
    )
    folder = processor(catalog, state.series, LogDedup(state))
    projection = Projection(catalog=lambda: catalog, series=state.series, closer=closer)
    spent = dict.fromkeys(("prepare", "process", "totals rows", "state log encoding"), 0.0)
    folded = [0]

    async def keep_nothing(key: bytes, value: bytes | None, partition: int) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def run() -> None:
        for batch in slices(records, SLICE_BYTES):
            t0 = time.process_time()
            folder.prepare(batch)
            t1 = time.process_time()
            result = folder.process(batch)
            t2 = time.process_time()
            folded[0] += result.folded
            projection.rows_of(result.dirty_series, now)
            t3 = time.process_time()
            await state.flush(keep_nothing)
            t4 = time.process_time()
            for key, seconds in zip(spent, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                spent[key] += seconds

    thresholds = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)  # the worker's
    try:
        asyncio.run(run())
    finally:
        gc.set_threshold(*thresholds)
    if folded[0] != measurements:  # the figures would be of something else (dead letters, duplicates)
        raise RuntimeError(f"aggregator_stages: folded {folded[0]} of {measurements} measurements")
    return {key: seconds / measurements * 1e6 for key, seconds in spent.items()}


def aggregator_memory(catalog: Catalog, customers: int) -> tuple[float, list[str]]:
    # The embedded engine's default (METERING_DEDUP_IDS=auto): every id in the state log's
    # memory, so the figure is per series with its id.
    state = StateLog(partitions=1, partition_of=lambda customer: 0)
    series = state.series
    index = SeriesIndex()
    process = processor(catalog, series, LogDedup(state)).process
    at = event_time()
    gc.collect()
    tracemalloc.start()
    for first in range(0, customers, 400):
        result = process(records(range(first, min(first + 400, customers)), at, first * 10))
        for key in result.dirty_series:
            index.add(key)
    gc.collect()
    used, _ = tracemalloc.get_traced_memory()
    top = [str(stat) for stat in tracemalloc.take_snapshot().statistics("lineno")[:8]]
    tracemalloc.stop()
    return used / len(series), top


def catalog_memory(customers: int) -> float:
    gc.collect()
    tracemalloc.start()
    catalog = bench_catalog(customers)
    gc.collect()
    used, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(catalog.customers) == customers
    return used / customers


def judging_after_a_change(catalog: Catalog, changes: int = 20) -> float:
    """Milliseconds to judge one measurement right after each of `changes` catalog changes
    (a new customer and subscription, as a sign-up writes them): what the ingest and the
    aggregator pay per change, since their judge's index follows the catalog's revision."""
    indexes = CatalogIndexes(lambda: catalog)
    at = datetime.now(UTC) - timedelta(minutes=1)
    earliest, latest = at - LIMITS.dedup_window, at + LIMITS.max_future
    spent = 0.0
    for change in range(changes):
        name = f"signed-up-{change}"
        catalog.put(Customer.model_validate({"name": name}))
        catalog.put(Subscription(customer_name=name, price_plan_name=PLAN_NAME, start_time=START))
        started = time.perf_counter()
        accepted = indexes.current().accepted(name, "api_calls", None, {}, 1, at, earliest, latest)
        spent += time.perf_counter() - started
        assert accepted is not None and accepted[0] == name
    return spent / changes * 1e3


def main() -> None:
    catalog = bench_catalog(20_000)
    stages = ingest_cpu(catalog)
    print("ingest CPU per measurement (us): " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items())
          + f"; total {sum(stages.values()):.1f}")
    cpu = aggregator_cpu(catalog, 20_000)
    print(f"aggregator Processor.process CPU per measurement (us, tables as dicts): {cpu:.1f}")
    steps = aggregator_stages(catalog)
    print("aggregator CPU per measurement by step, envelopes of 1,000 in the worker's slices (us): "
          + ", ".join(f"{k} {v:.2f}" for k, v in steps.items()) + f"; total {sum(steps.values()):.1f}")
    per_series, top = aggregator_memory(catalog, 20_000)
    print(f"aggregator memory per series, own structures (bytes): {per_series:.0f}")
    for line in top:
        print("   ", line)
    print(f"catalog memory per customer + subscription (bytes): {catalog_memory(100_000):.0f}")
    big = bench_catalog(100_000)
    print(f"judging a measurement right after a catalog change, 100,000 customers (ms): "
          f"{judging_after_a_change(big):.2f}")


if __name__ == "__main__":
    main()
