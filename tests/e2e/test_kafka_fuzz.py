"""Issue 13: thousands of random and hostile records on the measurements and catalog
topics, written straight to Kafka as a careless or malicious producer would. Afterwards
every service is alive (never restarted) and ready, the valid measurements mixed in are
folded exactly, every bad record or envelope item is in the dead-letter topic exactly
once, and every catalog view (one per process) skipped and counted each bad catalog record.

The stream is seeded; a failure prints its seed (METERING_FUZZ_SEED=<seed> replays it).
"""

from __future__ import annotations

import os
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from bench.hostile import WHOLE, Hostile, HostileRecords, Target, hostile_catalog_records
from services.infra import topics
from services.infra.catalog_view import publish_catalog
from services.infra.stack import Stack
from shared.catalog import parse_catalog
from tests.e2e.streaming import await_totals, scenario_catalog, subscription_window, utc_now
from tests.ops.metrics_catalog import CATALOG as METRIC_CONTRACT
from tests.ops.metrics_catalog import resolve
from tests.support.kafka import wait_for_no_lag
from tests.support.oracle import MeterSpec, expected_totals
from tests.support.pipeline import pipeline_settings

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse]

MEASUREMENT_RECORDS = 2_000
CATALOG_RECORDS = 200
SEED = int(os.environ.get("METERING_FUZZ_SEED", random.randrange(2**32)))


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str, clickhouse_url: str | None, tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    root: Path = tmp_path_factory.mktemp("fuzz")
    settings = pipeline_settings(
        kafka_bootstrap, clickhouse_url, root, tag="fz", kafka={"session_timeout_seconds": 6.0}
    )
    with Stack(settings, log_dir=root / "logs") as running:
        yield running


Where = tuple[int, int, int]  # partition, offset, envelope index (WHOLE for the record)


def _produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None]]) -> list[tuple[int, int]]:
    """(partition, offset) of each record, in order; murmur2 as the pipeline partitions."""
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5,
                         "message.max.bytes": 1_048_000, "enable.idempotence": True, "acks": "all"})
    placed: dict[int, tuple[int, int]] = {}
    errors: list[KafkaError] = []

    def delivered(index: int) -> Any:
        def report(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                errors.append(error)
            else:
                placed[index] = (message.partition() or 0, message.offset() or 0)
        return report

    for index, (key, value) in enumerate(records):
        producer.produce(topic, key=key, value=value, on_delivery=delivered(index))
        producer.poll(0)
    assert producer.flush(60) == 0 and errors == []
    return [placed[i] for i in range(len(records))]


def _dead_letters(stack: Stack, topic: str) -> Counter[Where]:
    """Every dead letter of `topic`'s records, counted by where it came from."""
    name = topics.name(stack.settings, topics.DEAD_LETTERS)
    consumer = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": f"fz-{uuid.uuid4()}",
                         "enable.auto.commit": False})
    found: Counter[Where] = Counter()
    try:
        partitions = consumer.list_topics(name, timeout=10).topics[name].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(name, p, 0) for p in partitions])
        read = dict.fromkeys(partitions, 0)
        deadline = time.monotonic() + 120
        while any(read[p] < ends[p] for p in partitions) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            read[message.partition() or 0] = (message.offset() or 0) + 1
            headers = dict(message.headers() or [])
            if headers.get("original_topic") != topic.encode():
                continue
            index = headers.get("original_index")
            found[(int(headers["original_partition"] or b"-1"), int(headers["original_offset"] or b"-1"),
                   WHOLE if index is None else int(index))] += 1
    finally:
        consumer.close()
    return found


def _expected_dead(records: list[Hostile], placed: list[tuple[int, int]]) -> Counter[Where]:
    return Counter(
        (partition, offset, index)
        for h, (partition, offset) in zip(records, placed, strict=True) for index in h.dead
    )


def _skipped_by_part(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    pattern = r'^metering_catalog_records_skipped_total\{part="(\w+)"\} ([0-9.e+]+)$'
    return {part: float(value) for part, value in re.findall(pattern, text, flags=re.M)}


def _urls(stack: Stack) -> dict[str, str]:
    return {"ingest": stack.ingest_url, "aggregator": stack.aggregator_url,
            "rater": f"http://127.0.0.1:{stack.settings.http.rater_port}"}


def _assert_metrics_keep_the_contract(component: str, url: str) -> None:
    """Every metering_ series a service exports is in the contract the dashboards use."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    # prometheus_client adds a `_created` timestamp series to each counter and histogram
    names = {n for n in re.findall(r"^(metering_\w+?)(?:\{| )", text, flags=re.M) if not n.endswith("_created")}
    strangers = {n for n in names if resolve(n) is None or resolve(n)[0] not in METRIC_CONTRACT[component]}  # type: ignore[index]
    assert strangers == set(), f"{component} exports metrics outside tests/ops/metrics_catalog.py"


def test_hostile_records_are_dead_lettered_once_and_valid_ones_fold_exactly(stack: Stack) -> None:
    rng = random.Random(SEED)
    note = f"METERING_FUZZ_SEED={SEED}"
    pids = {name: child.pid for name, child in stack.children.items()}
    urls = _urls(stack)
    skipped_before = {name: _skipped_by_part(url) for name, url in urls.items()}

    # The catalog topic first: each view must skip these and still follow the topic, or
    # the customer applied after them would be unknown and every marker dead-lettered.
    bad_catalog = hostile_catalog_records(rng, CATALOG_RECORDS)
    _produce(stack.bootstrap, topics.name(stack.settings, topics.CATALOG), [(k, v) for k, v, _ in bad_catalog])
    customer = f"fz-{uuid.uuid4().hex[:6]}"
    meters = [MeterSpec(f"{customer}-sum", "COUNTER", "SUM", True),
              MeterSpec(f"{customer}-max", "COUNTER", "MAX", True),
              MeterSpec(f"{customer}-uniq", "COUNTER", "UNIQUE_COUNT", True)]
    now = utc_now()
    start, periods = subscription_window(now)
    catalog, problems = parse_catalog(scenario_catalog(customer, meters, start))
    assert problems == []
    publish_catalog(stack.settings, stack.bootstrap, catalog)

    generator = HostileRecords(rng, Target(customer, meters[0].name, meters[1].name, meters[2].name, now))
    records = [generator.record() for _ in range(MEASUREMENT_RECORDS)]
    topic = topics.name(stack.settings, topics.MEASUREMENTS)
    placed = _produce(stack.bootstrap, topic, [(h.key, h.value) for h in records])

    valid = [m for h in records for m in h.valid]
    expected = expected_totals(meters, valid, periods, open_index=1)
    assert await_totals(stack, customer, expected, timeout=240) == expected, note
    wait_for_no_lag(stack.bootstrap, f"{stack.settings.kafka.consumer_group_prefix}-aggregator", topic, timeout=120)

    dead = _dead_letters(stack, topic)
    wanted = _expected_dead(records, placed)
    twice = {where: n for where, n in dead.items() if n > 1}
    kind_at = {p: h.kind for h, p in zip(records, placed, strict=True)}
    missing = {where: kind_at[where[:2]] for where in wanted - dead}
    strays = set(dead) - set(wanted)
    assert (twice, missing, strays) == ({}, {}, set()), note

    want_skipped = Counter(part for _, _, part in bad_catalog)
    # One catalog view per process: each process of the ingest group skips (and counts) each.
    views = {"ingest": stack.settings.http.ingest_processes}
    for name, url in urls.items():
        after = _skipped_by_part(url)
        grew = {part: after.get(part, 0.0) - skipped_before[name].get(part, 0.0) for part in ("key", "kind", "value")}
        assert grew == {part: float(want_skipped[part] * views.get(name, 1)) for part in grew}, (name, note)
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200, name
        _assert_metrics_keep_the_contract(name, url)
    assert {name: child.pid for name, child in stack.children.items()} == pids, "a service restarted"
    assert sum(len(h.valid) for h in records) > 0 and sum(Decimal(len(h.dead)) for h in records) > 0
