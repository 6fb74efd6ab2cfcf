"""Crash safety, proven: the aggregator is SIGKILLed at every step of its flush orders
(services/aggregator/batches.py and ticks.py) while measurements of every meter kind
flow, some of them through the wrong partition and some sent twice. After the restart:
- the stored totals equal a plain batch computation over the deduplicated input;
- for every customer, the closed period's invoice plus its corrections equal the
  rating of the batch-computed totals, to the cent.
And a crash loop before the first offset commit: every restarted worker reads its
partitions from their beginning, never from their end.
"""

from __future__ import annotations

import json
import random
import time
import uuid
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from services.aggregator.faults import POINTS
from services.aggregator.worker import BATCH_SIZE
from services.infra import topics
from services.infra.catalog_view import publish_catalog
from services.infra.partitioning import customer_partition
from services.infra.stack import Stack
from services.rater.invoicing import invoice_for
from services.rater.ledger import Ledger
from shared.catalog import parse_catalog
from shared.models.invoice import Invoice, PeriodTotals
from shared.periods import Period
from tests.e2e.streaming import (
    KINDS,
    await_totals,
    delivery_order,
    measurements,
    produce,
    scenario_catalog,
    subscription_window,
    utc_now,
)
from tests.support.faults import fault_control
from tests.support.kafka import read_invoices
from tests.support.oracle import MeterSpec, expected_totals
from tests.support.pipeline import SMALL_SLICE_BYTES, pipeline_settings

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse]


@pytest.fixture(scope="module")
def control(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with fault_control(tmp_path_factory.mktemp("faults") / "control") as path:
        yield path


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, clickhouse_url: str | None, control: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("crash")
    settings = pipeline_settings(
        kafka_bootstrap, clickhouse_url, root, tag="crash",
        kafka={"session_timeout_seconds": 6.0}, event_time={"housekeeping_seconds": 5.0},
        limits={"aggregator_slice_bytes": SMALL_SLICE_BYTES},
    )
    with Stack(settings, log_dir=root / "logs") as running:
        yield running


def _crc32_partition(customer: str, partitions: int) -> int:
    """Where librdkafka's consistent_random partitioner puts a key (rd_crc32 % count)."""
    return zlib.crc32(customer.encode()) % partitions


def _customers(point: str, partitions: int) -> list[str]:
    """Three customers, at least one of which the CRC32 partitioner puts in a partition
    that is not its own. Drawn at random, all three agreed with murmur2 once in eight runs
    on two partitions: nothing was forwarded, and the after_forward case waited for a
    step that never came."""
    while True:
        customers = [f"{point[:8]}-{uuid.uuid4().hex[:6]}-{i}" for i in range(3)]
        if any(_crc32_partition(c, partitions) != customer_partition(c, partitions) for c in customers):
            return customers


def _produce_misrouted(bootstrap: str, topic: str, records: list[dict[str, Any]]) -> None:
    """As kcat would by default: keyed by customer, but librdkafka's CRC32 partitioner."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                         "partitioner": "consistent_random"})
    for record in records:
        producer.produce(topic, key=record["customer_name"].encode(), value=json.dumps(record).encode())
    assert producer.flush(30) == 0


def _produce_envelopes(bootstrap: str, topic: str, records: list[dict[str, Any]]) -> None:
    by_customer: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_customer.setdefault(record["customer_name"], []).append(record)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                         "partitioner": "murmur2_random"})
    for customer, items in by_customer.items():
        for start in range(0, len(items), 50):
            producer.produce(topic, key=customer.encode(), value=json.dumps(items[start:start + 50]).encode())
    assert producer.flush(30) == 0


def _wait_fired(stack: Stack, control: Path, point: str, old_pid: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if control.read_text() == f"fired {point}" and stack.children["aggregator"].pid != old_pid:
            return
        time.sleep(0.2)
    raise AssertionError(f"the aggregator never reached {point} and restarted (control: {control.read_text()!r})")


def _batch_invoice_total(stack: Stack, customer: str, meters: list[MeterSpec], records: list[dict[str, Any]],
                         periods: list[Period], start: datetime) -> Decimal:
    """Period 0 rated from the batch computation, by the rater's own pure functions."""
    catalog, problems = parse_catalog(scenario_catalog(customer, meters, start))
    assert problems == []
    totals: dict[str, dict[str, Decimal]] = {}
    for (meter, series, period_start), value in expected_totals(meters, records, periods, open_index=1).items():
        if period_start == periods[0].start:
            totals.setdefault(meter, {})[series] = value
    event = PeriodTotals(
        customer_name=customer, price_plan_name=f"plan-{customer}", subscription_start=start, period_index=0,
        period_start=periods[0].start, period_end=periods[0].end, totals=totals, reason="closed",
        watermark=datetime.now(UTC),
    )
    invoice = invoice_for(event, catalog, Ledger(), datetime.now(UTC))
    assert invoice is not None
    return invoice.total


def _invoiced(stack: Stack, customer: str, period_start: datetime) -> list[Invoice]:
    found = read_invoices(stack.bootstrap, topics.name(stack.settings, topics.INVOICES), expected=10**6,
                          timeout=3)
    return [i for i in found if i.customer_name == customer and i.period_start == period_start]


@pytest.mark.parametrize("point", POINTS)
def test_a_sigkill_at_each_flush_step_loses_and_doubles_nothing(stack: Stack, control: Path, point: str) -> None:
    rng = random.Random(point)
    customers = _customers(point, stack.settings.kafka.partitions)
    meters_of = {c: [MeterSpec(f"{c}-{i}", t, a, inc) for i, (t, a, inc) in enumerate(KINDS)] for c in customers}
    now = utc_now()
    start, periods = subscription_window(now)
    records: dict[str, list[dict[str, Any]]] = {}
    for customer in customers:
        catalog, problems = parse_catalog(scenario_catalog(customer, meters_of[customer], start))
        assert problems == []
        publish_catalog(stack.settings, stack.bootstrap, catalog)
        records[customer] = measurements(rng, customer, meters_of[customer], 240, now)
    deliveries = [d for c in customers for d in delivery_order(rng, records[c], 0.15)]
    rng.shuffle(deliveries)
    third = len(deliveries) // 3
    topic = topics.name(stack.settings, topics.MEASUREMENTS)

    old_pid = stack.children["aggregator"].pid
    control.write_text(point)
    _produce_misrouted(stack.bootstrap, topic, deliveries[:third])
    _produce_envelopes(stack.bootstrap, topic, deliveries[third:2 * third])
    _wait_fired(stack, control, point, old_pid)
    # While it restarts and after: the rest, plus records it may have half-handled again.
    produce(stack.bootstrap, topic, deliveries[2 * third:] + rng.sample(deliveries[:2 * third], 40))

    for customer in customers:
        expected = expected_totals(meters_of[customer], records[customer], periods, open_index=1)
        stored = await_totals(stack, customer, expected, timeout=120)
        differing = {k: (stored.get(k), v) for k, v in expected.items() if stored.get(k) != v}
        assert differing == {} and set(stored) == set(expected), f"{customer}: (stored, expected) differ"
    for customer in customers:
        wanted = _batch_invoice_total(stack, customer, meters_of[customer], records[customer], periods, start)
        deadline = time.monotonic() + 90
        billed: Decimal | None = None
        while time.monotonic() < deadline:
            invoices = _invoiced(stack, customer, periods[0].start)
            billed = sum((i.total for i in invoices), Decimal(0))
            if billed == wanted and len({i.revision for i in invoices}) == len(invoices):
                break
        assert billed == wanted, f"{customer}: invoice + corrections {billed} != batch computation {wanted}"


@pytest.fixture
def fresh_stack(kafka_bootstrap: str, clickhouse_url: str | None, control: Path, tmp_path: Path) -> Iterator[Stack]:
    """A pipeline whose consumer group has never committed an offset."""
    settings = pipeline_settings(kafka_bootstrap, clickhouse_url, tmp_path / "data", tag="loop",
                                 kafka={"session_timeout_seconds": 6.0})
    with Stack(settings, log_dir=tmp_path / "logs") as running:
        yield running


def _committed_offsets(stack: Stack) -> list[int]:
    group = f"{stack.settings.kafka.consumer_group_prefix}-aggregator"
    topic = topics.name(stack.settings, topics.MEASUREMENTS)
    consumer = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        wanted = [TopicPartition(topic, p) for p in range(stack.settings.kafka.partitions)]
        return [tp.offset for tp in consumer.committed(wanted, timeout=10)]
    finally:
        consumer.close()


def test_a_crash_loop_before_any_commit_reads_the_partitions_from_their_beginning(
    fresh_stack: Stack, control: Path
) -> None:
    # Every worker dies at its first batch, so none ever commits an offset. Each restarted
    # worker must then start at the beginning of its partitions (app.py:
    # consumer_auto_offset_reset="earliest"): from their end, it would never read what its
    # predecessors had read and died on.
    stack = fresh_stack
    rng = random.Random("crash-loop")
    partitions = stack.settings.kafka.partitions
    customers: dict[int, str] = {}
    while len(customers) < partitions:  # one customer per partition
        name = f"loop-{uuid.uuid4().hex[:6]}"
        customers.setdefault(customer_partition(name, partitions), name)
    meters_of = {
        c: [MeterSpec(f"{c}-{i}", t, a, inc) for i, (t, a, inc) in enumerate(KINDS)] for c in customers.values()
    }
    now = utc_now()
    start, periods = subscription_window(now)
    records: dict[str, list[dict[str, Any]]] = {}
    for customer in customers.values():
        catalog, problems = parse_catalog(scenario_catalog(customer, meters_of[customer], start))
        assert problems == []
        publish_catalog(stack.settings, stack.bootstrap, catalog)
        records[customer] = measurements(rng, customer, meters_of[customer], 1800, now)
    deliveries = [d for c in customers.values() for d in delivery_order(rng, records[c], 0.1)]
    rng.shuffle(deliveries)
    # More than one batch (BATCH_SIZE records at most): the first worker's only batch
    # cannot have stored everything before it died.
    assert len(deliveries) > 1.5 * BATCH_SIZE

    control.write_text("after_store 3")
    produce(stack.bootstrap, topics.name(stack.settings, topics.MEASUREMENTS), deliveries)
    deadline = time.monotonic() + 120
    while control.read_text() != "after_store 1":
        # Stuck at "after_store 2": the restarted worker never read a record again (it began
        # at the end of its partitions).
        assert time.monotonic() < deadline, f"no restarted worker read the input: {control.read_text()!r}"
        time.sleep(0.2)
    # Two workers died at their first batch and the next one will too: nothing can have
    # been committed.
    assert all(offset < 0 for offset in _committed_offsets(stack)), _committed_offsets(stack)
    deadline = time.monotonic() + 120
    while control.read_text() != "fired after_store":
        assert time.monotonic() < deadline, f"the third crash did not happen: {control.read_text()!r}"
        time.sleep(0.2)

    for customer in customers.values():
        expected = expected_totals(meters_of[customer], records[customer], periods, open_index=1)
        stored = await_totals(stack, customer, expected, timeout=120)
        differing = {k: (stored.get(k), v) for k, v in expected.items() if stored.get(k) != v}
        assert differing == {} and set(stored) == set(expected), f"{customer}: (stored, expected) differ"
