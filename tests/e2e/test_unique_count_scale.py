"""Issue 11: a UNIQUE_COUNT series with a great many distinct values in one period.

Counted exactly, persisted so that a SIGKILLed aggregator goes on from the same value
set (old values sent again do not count again, new ones do), and never written to the
state log in a record larger than the broker accepts (today's design: at most
state_log.RECORD_BYTES per record).

CI runs 200,000 values; the full 1,000,000 of the issue runs when METERING_STRESS=1
(`make stress-unique`), because it takes several minutes on a 2-core machine.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from services.aggregator.state_log import RECORD_BYTES
from services.infra import topics
from services.infra.catalog_view import publish_catalog
from services.infra.stack import Stack
from shared.catalog import parse_catalog
from tests.e2e.streaming import await_totals, scenario_catalog, subscription_window, utc_now
from tests.support.kafka import wait_for_no_lag
from tests.support.oracle import MeterSpec
from tests.support.pipeline import pipeline_settings

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse]

ENVELOPE_ITEMS = 1000  # what the ingest service writes per record at most
BROKER_RECORD_LIMIT = 1024 * 1024  # Kafka's default message.max.bytes (1 MiB + 12 bytes overhead)
STRESS = os.environ.get("METERING_STRESS") == "1"


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str, clickhouse_url: str | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("uniques")
    settings = pipeline_settings(kafka_bootstrap, clickhouse_url, root, tag="uniq")
    with Stack(settings, log_dir=root / "logs") as running:
        yield running


def _item(customer: str, meter: str, measurement_id: str, value: int, at: datetime) -> dict[str, Any]:
    return {"id": measurement_id, "meter_name": meter, "customer_name": customer, "value": value,
            "time": at.isoformat(), "labels": {"region": "eu"}}


def _produce_envelopes(bootstrap: str, topic: str, customer: str, items: list[dict[str, Any]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                         "partitioner": "murmur2_random", "linger.ms": 20, "compression.type": "lz4"})
    for start in range(0, len(items), ENVELOPE_ITEMS):
        value = json.dumps(items[start:start + ENVELOPE_ITEMS], separators=(",", ":")).encode()
        producer.produce(topic, key=customer.encode(), value=value)
        producer.poll(0)
    assert producer.flush(60) == 0


def _state_log(bootstrap: str, topic: str, partitions: int) -> tuple[int, int, dict[bytes, bytes | None]]:
    """Every record still in the state topic: (records read, largest value, latest value per key)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"state-audit-{uuid.uuid4()}",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    count, largest = 0, 0
    latest: dict[bytes, bytes | None] = {}
    try:
        for partition in range(partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
            if high <= low:
                continue
            consumer.assign([TopicPartition(topic, partition, low)])
            position, deadline = low, time.monotonic() + 300
            while position < high:
                assert time.monotonic() < deadline, f"could not read {topic}[{partition}] to {high}"
                for message in consumer.consume(num_messages=500, timeout=0.5):
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            position = max(position, message.offset() or 0)
                            continue
                        raise KafkaException(error)
                    value = message.value()
                    count += 1
                    largest = max(largest, len(value or b""))
                    latest[message.key() or b""] = value
                    position = (message.offset() or 0) + 1
    finally:
        consumer.close()
    return count, largest, latest


def _logged_uniques(latest: dict[bytes, bytes | None], customer: str) -> set[Any]:
    """The distinct values the live state records hold for the customer's series."""
    values: set[Any] = set()
    for value in latest.values():
        for op in json.loads(value) if value else []:
            if op[0] == "u" and customer in json.dumps(op[1]):
                values.update(op[2])
    return values


def _await_restart(stack: Stack, old_pid: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while stack.children["aggregator"].pid == old_pid:
        assert time.monotonic() < deadline, "the stack did not restart the aggregator"
        time.sleep(0.2)


@pytest.mark.parametrize("distinct", [
    pytest.param(200_000, marks=pytest.mark.timeout(900)),
    pytest.param(1_000_000, marks=[
        pytest.mark.skipif(not STRESS, reason="stress size: METERING_STRESS=1 (make stress-unique)"),
        pytest.mark.timeout(3600),
    ]),
])
def test_distinct_values_are_counted_exactly_through_a_sigkill(stack: Stack, distinct: int, tmp_path: Path) -> None:
    customer = f"uniq-{uuid.uuid4().hex[:6]}"
    meter = MeterSpec(f"{customer}-visitors", "COUNTER", "UNIQUE_COUNT", True)
    now = utc_now()
    start, periods = subscription_window(now)
    [current] = [p for p in periods if p.contains(now)]
    catalog, problems = parse_catalog(scenario_catalog(customer, [meter], start))
    assert problems == []
    publish_catalog(stack.settings, stack.bootstrap, catalog)
    topic = topics.name(stack.settings, topics.MEASUREMENTS)
    at = now - timedelta(minutes=5)
    key = (meter.name, "region=eu", current.start)

    began = time.monotonic()
    items = [_item(customer, meter.name, f"v-{i}", i, at) for i in range(distinct)]
    _produce_envelopes(stack.bootstrap, topic, customer, items)
    print(f"\n{distinct:,} distinct values produced in {time.monotonic() - began:.0f} s", flush=True)
    expected = {key: Decimal(distinct)}
    assert await_totals(stack, customer, expected, timeout=120 + distinct / 1000) == expected
    print(f"folded and stored {time.monotonic() - began:.0f} s after the start", flush=True)

    old_pid = stack.children["aggregator"].pid
    os.killpg(old_pid, signal.SIGKILL)
    killed = time.monotonic()
    _await_restart(stack, old_pid)
    # After the restart: new values count, old values under new ids and identical
    # retries of old measurements do not.
    later = [_item(customer, meter.name, f"new-{i}", distinct + i, at) for i in range(1000)]
    repeats = [_item(customer, meter.name, f"again-{i}", i * (distinct // 500), at) for i in range(500)]
    retries = items[-300:]
    _produce_envelopes(stack.bootstrap, topic, customer, repeats + later[:500] + retries + later[500:])
    expected = {key: Decimal(distinct + 1000)}
    assert await_totals(stack, customer, expected, timeout=120 + distinct / 2000) == expected
    elapsed = time.monotonic() - killed
    print(f"SIGKILL, restart, 1,800 more measurements exact {elapsed:.0f} s after the kill", flush=True)

    # The value set lives in the state log, in records the broker accepts. The store
    # shows a batch before its state is logged (flush order, batches.py): once every
    # offset is committed, every batch's state is in the log.
    group = f"{stack.settings.kafka.consumer_group_prefix}-aggregator"
    wait_for_no_lag(stack.bootstrap, group, topic, timeout=300)
    records, largest, latest = _state_log(
        stack.bootstrap, topics.name(stack.settings, topics.AGGREGATOR_STATE), stack.settings.kafka.partitions)
    print(f"state log: {records:,} records, the largest {largest:,} bytes; "
          f"{time.monotonic() - began:.0f} s in all", flush=True)
    assert largest <= RECORD_BYTES < BROKER_RECORD_LIMIT, f"a state record of {largest} bytes"
    logged = _logged_uniques(latest, customer)
    assert len(logged) == distinct + 1000 and logged == {str(i) for i in range(distinct + 1000)}
