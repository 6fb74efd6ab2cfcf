"""Issue 4's proofs on the real broker and the real engine: whatever the order,
duplication, lateness, crash or rebalance history of the input, the stored totals are
exactly those of a plain batch computation over the deduplicated input."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from services.infra import topics
from services.infra.catalog_view import publish_catalog
from services.infra.ports import free_port
from services.infra.stack import Stack
from services.settings import settings_env
from shared.catalog import parse_catalog
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
from tests.support.oracle import MeterSpec, expected_totals
from tests.support.pipeline import SMALL_SLICE_BYTES, pipeline_settings

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse]


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str, clickhouse_url: str | None, tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("aggregation")
    settings = pipeline_settings(
        kafka_bootstrap, clickhouse_url, root, tag="agg",
        kafka={"session_timeout_seconds": 6.0}, event_time={"housekeeping_seconds": 5.0},
        limits={"aggregator_slice_bytes": SMALL_SLICE_BYTES},
    )
    with Stack(settings, log_dir=root / "logs") as running:
        yield running


def _apply(stack: Stack, customer: str, meters: list[MeterSpec], start: datetime) -> None:
    catalog, problems = parse_catalog(scenario_catalog(customer, meters, start))
    assert problems == []
    publish_catalog(stack.settings, stack.bootstrap, catalog)


def _meters(prefix: str, kinds: list[tuple[str, str, bool]]) -> list[MeterSpec]:
    return [MeterSpec(f"{prefix}-{i}", t, a, inc) for i, (t, a, inc) in enumerate(kinds)]


@hypothesis_settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), derandomize=False)
@given(
    seed=st.integers(0, 2**32 - 1),
    kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=4, unique=True),
    count=st.integers(1, 120),
    duplicate_share=st.sampled_from([0.0, 0.2, 0.6]),
)
def test_random_streams_give_the_batch_totals(
    stack: Stack, seed: int, kinds: list[Any], count: int, duplicate_share: float,
) -> None:
    rng = random.Random(seed)
    customer = f"cust-{uuid.uuid4().hex[:8]}"
    meters = _meters(customer, kinds)
    now = utc_now()
    start, periods = subscription_window(now)
    _apply(stack, customer, meters, start)
    records = measurements(rng, customer, meters, count, now)
    topic = topics.name(stack.settings, topics.MEASUREMENTS)
    produce(stack.bootstrap, topic, delivery_order(rng, records, duplicate_share))
    expected = expected_totals(meters, records, periods, open_index=1)
    assert await_totals(stack, customer, expected, timeout=40) == expected


def _stream(stack: Stack, customers: list[str], meters_of: dict[str, list[MeterSpec]], per_customer: int,
            chunks: int, between: Callable[[int], None]) -> tuple[list[Period], dict[str, list[dict[str, Any]]]]:
    """Produce every customer's measurements in `chunks`, calling `between(i)` after chunk i."""
    rng = random.Random(7)
    now = utc_now()
    start, periods = subscription_window(now)
    records: dict[str, list[dict[str, Any]]] = {}
    deliveries: list[dict[str, Any]] = []
    for customer in customers:
        _apply(stack, customer, meters_of[customer], start)
        records[customer] = measurements(rng, customer, meters_of[customer], per_customer, now)
        deliveries += delivery_order(rng, records[customer], 0.1)
    rng.shuffle(deliveries)
    size = len(deliveries) // chunks + 1
    topic = topics.name(stack.settings, topics.MEASUREMENTS)
    for i in range(chunks):
        produce(stack.bootstrap, topic, deliveries[i * size:(i + 1) * size])
        between(i)
    return periods, records


def _assert_exact(
    stack: Stack, meters_of: dict[str, list[MeterSpec]], periods: list[Period], records: dict[str, list[dict[str, Any]]]
) -> None:
    for customer, recs in records.items():
        expected = expected_totals(meters_of[customer], recs, periods, open_index=1)
        stored = await_totals(stack, customer, expected, timeout=120)
        differing = {
            k: (stored.get(k), expected.get(k)) for k in set(stored) | set(expected) if stored.get(k) != expected.get(k)
        }
        assert differing == {}, f"{customer}: (stored, expected) differ"


def test_sigkilled_aggregator_restarts_and_totals_stay_exact(stack: Stack) -> None:
    customers = [f"crash-{uuid.uuid4().hex[:6]}-{i}" for i in range(4)]
    meters_of = {c: _meters(c, KINDS[:3] + KINDS[5:6] + KINDS[7:8]) for c in customers}
    killed: list[int] = []

    def kill_mid_stream(chunk: int) -> None:
        if chunk in (2, 5):
            time.sleep(1.0)  # let it be in the middle of folding
            child = stack.children["aggregator"]
            os.killpg(child.pid, signal.SIGKILL)
            killed.append(child.pid)
            deadline = time.monotonic() + 30
            while stack.children["aggregator"].pid == child.pid and time.monotonic() < deadline:
                time.sleep(0.2)  # the stack restarts it

    periods, records = _stream(stack, customers, meters_of, per_customer=1500, chunks=8, between=kill_mid_stream)
    assert len(killed) == 2
    _assert_exact(stack, meters_of, periods, records)


def test_a_second_worker_joining_and_leaving_keeps_totals_exact(stack: Stack, tmp_path: Path) -> None:
    customers = [f"rebal-{uuid.uuid4().hex[:6]}-{i}" for i in range(6)]
    meters_of = {c: _meters(c, [KINDS[0], KINDS[7]]) for c in customers}
    # The embedded engine lets one process own a data folder, so the second worker has a
    # store of its own; the first worker's store must still end exact, because the table
    # state travels through Kafka changelogs and is re-synced to its store on takeover.
    second_settings = stack.settings.updated(data_dir=tmp_path / "second", http={"aggregator_port": free_port()})
    env = {**os.environ, **settings_env(second_settings)}
    second: list[subprocess.Popen[bytes]] = []

    def join_then_leave(chunk: int) -> None:
        if chunk == 1:
            with (tmp_path / "second.log").open("wb") as log:  # the worker keeps its own descriptor
                second.append(subprocess.Popen([sys.executable, "-m", "services.cli", "aggregator"], env=env,
                                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            ready_url = f"http://127.0.0.1:{second_settings.http.aggregator_port}/readyz"
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # joined the group, recovered, took partitions
                try:
                    if httpx.get(ready_url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            else:
                raise AssertionError("the second worker never became ready")
        if chunk == 4:
            os.killpg(second[0].pid, signal.SIGTERM)
            assert second[0].wait(timeout=120) == 0
        time.sleep(1)

    try:
        periods, records = _stream(stack, customers, meters_of, per_customer=800, chunks=7, between=join_then_leave)
        _assert_exact(stack, meters_of, periods, records)
    finally:
        for process in second:
            if process.poll() is None:
                process.kill()
    log_text = (tmp_path / "second.log").read_text(errors="replace")
    assert "Traceback" not in log_text, log_text[-3000:]


def test_invalid_kafka_native_records_are_dead_lettered_with_reason_and_origin(stack: Stack) -> None:
    from confluent_kafka import Consumer

    customer = f"dlq-{uuid.uuid4().hex[:6]}"
    meters = _meters(customer, [KINDS[0]])
    now = utc_now()
    start, _ = subscription_window(now)
    _apply(stack, customer, meters, start)
    good = {"id": "ok-1", "meter_name": meters[0].name, "customer_name": customer, "value": 5,
            "time": now.isoformat(), "labels": {"region": "eu"}}
    bad_value = {**good, "id": "bad-1", "value": 1.5}
    # Keyed by someone else: judged by its content, forwarded to its customer's partition
    # if it landed in another one, and folded there (not lost, not dead-lettered).
    wrong_key = {**good, "id": "ok-2"}
    topic = topics.name(stack.settings, topics.MEASUREMENTS)
    produce(stack.bootstrap, topic, [good, bad_value])
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": stack.bootstrap})
    producer.produce(topic, key=b"someone-else", value=json.dumps(wrong_key).encode())
    producer.produce(topic, key=customer.encode(), value=b"{not json")
    assert producer.flush(10) == 0

    consumer = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": f"dlq-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topics.name(stack.settings, topics.DEAD_LETTERS)])
    reasons: dict[bytes, dict[str, bytes]] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len([v for v in reasons if customer.encode() in v or b"not json" in v]) < 2:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            reasons[message.value() or b""] = dict(message.headers() or [])
    consumer.close()
    mine = {value: headers for value, headers in reasons.items() if customer.encode() in value or value == b"{not json"}
    assert len(mine) == 2
    by_id = {json.loads(v)["id"] if v.startswith(b"{\"") else "garbage": h for v, h in mine.items()}
    assert by_id["bad-1"]["reason"] == f"value: must be a whole number for INT meter '{meters[0].name}'".encode()
    assert by_id["garbage"]["reason"].startswith(b"body: Invalid JSON")
    for headers in by_id.values():
        assert headers["original_topic"] == topic.encode()
        assert int(headers["original_offset"]) >= 0 and int(headers["original_partition"]) in (0, 1)
    current = [p for p in subscription_window(now)[1] if p.contains(now)]
    expected = {(meters[0].name, "region=eu", p.start): Decimal(10) for p in current}
    assert await_totals(stack, customer, expected, timeout=30) == expected


def test_the_largest_accepted_values_sum_exactly_and_the_worker_goes_on(stack: Stack) -> None:
    # Issue 13, finding 2: two values of 26 nines on one series overflowed the store's
    # Decimal(38, 12) and the aggregator crash-looped on every restart.
    customer = f"huge-{uuid.uuid4().hex[:6]}"
    meters = _meters(customer, [KINDS[0]])
    now = utc_now()
    start, periods = subscription_window(now)
    _apply(stack, customer, meters, start)
    nines = "9" * 26
    records = [{"id": f"h-{i}", "meter_name": meters[0].name, "customer_name": customer, "value": nines,
                "time": now.isoformat(), "labels": {"region": "eu"}} for i in range(3)]
    pid = stack.children["aggregator"].pid
    produce(stack.bootstrap, topics.name(stack.settings, topics.MEASUREMENTS), records)
    [current] = [p for p in periods if p.contains(now)]
    expected = {(meters[0].name, "region=eu", current.start): Decimal(nines) * 3}
    assert await_totals(stack, customer, expected, timeout=60) == expected
    assert stack.children["aggregator"].pid == pid, "the aggregator restarted"


def test_faust_built_in_pages_are_not_served(stack: Stack) -> None:
    # Issue 13, finding 8: /router/ and /table/ answered without a key.
    for path in ("/router/", "/table/", "/graph/", "/stats/"):
        assert httpx.get(f"{stack.aggregator_url}{path}", timeout=10).status_code == 404, path
    assert httpx.get(f"{stack.aggregator_url}/store/totals", timeout=10).status_code == 401
    assert httpx.get(f"{stack.aggregator_url}/healthz", timeout=10).status_code == 200
