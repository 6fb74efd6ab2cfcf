"""Deduplication with bounded memory (METERING_DEDUP_IDS=store, services/aggregator/dedup.py)
on the real broker and engine: only 20 ids stay in memory, so nearly every duplicate is
caught by the id filter and the store. Retried and shuffled input, and SIGKILLs in the
middle of it, still give exactly the totals of a batch computation."""

from __future__ import annotations

import os
import random
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.infra import topics
from services.infra.catalog_view import publish_catalog
from services.infra.stack import Stack
from shared.catalog import parse_catalog
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
from tests.support.pipeline import pipeline_settings

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse]


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str, clickhouse_url: str | None, tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    root: Path = tmp_path_factory.mktemp("dedup_store")
    settings = pipeline_settings(
        kafka_bootstrap, clickhouse_url, root, tag="dds",
        kafka={"session_timeout_seconds": 6.0}, limits={"dedup_ids": "store", "dedup_recent_ids": 20},
    )
    with Stack(settings, log_dir=root / "logs") as running:
        yield running


def _kill_aggregator(stack: Stack) -> None:
    child = stack.children["aggregator"]
    os.killpg(child.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while stack.children["aggregator"].pid == child.pid and time.monotonic() < deadline:
        time.sleep(0.2)  # the stack restarts it


def test_duplicates_beyond_memory_are_found_in_the_store_through_sigkills(stack: Stack) -> None:
    rng = random.Random(11)
    customer = f"dds-{uuid.uuid4().hex[:6]}"
    kinds = [*KINDS[:3], *KINDS[5:6], *KINDS[7:8]]
    meters = [MeterSpec(f"{customer}-{i}", t, a, inc) for i, (t, a, inc) in enumerate(kinds)]
    now = utc_now()
    start, periods = subscription_window(now)
    catalog, problems = parse_catalog(scenario_catalog(customer, meters, start))
    assert problems == []
    publish_catalog(stack.settings, stack.bootstrap, catalog)
    records = measurements(rng, customer, meters, 2400, now)
    # Each id is sent up to three times, retries spread over the whole stream.
    deliveries = delivery_order(rng, records, 0.5) + [r for r in records if rng.random() < 0.3]
    rng.shuffle(deliveries)
    topic = topics.name(stack.settings, topics.MEASUREMENTS)
    chunks = [deliveries[i::6] for i in range(6)]
    for index, chunk in enumerate(chunks):
        produce(stack.bootstrap, topic, chunk)
        if index in (2, 4):
            time.sleep(1.0)  # in the middle of folding
            _kill_aggregator(stack)
    expected = expected_totals(meters, records, periods, open_index=1)
    stored = await_totals(stack, customer, expected, timeout=180)
    differing = {
        k: (stored.get(k), expected.get(k)) for k in set(stored) | set(expected) if stored.get(k) != expected.get(k)
    }
    assert differing == {}, "(stored, expected) differ"


