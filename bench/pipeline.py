"""Pipelines for the bench: Settings like the test suite's, one Stack per scenario."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Consumer, Producer, TopicPartition

from services.infra import topics
from services.infra.kafka_config import consumer_config
from services.infra.ports import free_port
from services.infra.stack import Stack
from services.settings import (
    ClickHouseSettings,
    EventTimeSettings,
    HttpSettings,
    KafkaSettings,
    Settings,
)


def bench_settings(bootstrap: str, root: Path, name: str, ingest_processes: int | None = None) -> Settings:
    """Own topics, groups, ports, store and API key; short grace (like tests/conftest.py).

    `ingest_processes`: None for the setting's default (the CPUs the bench may use).
    """
    unique = uuid.uuid4().hex[:8]
    processes = {} if ingest_processes is None else {"ingest_processes": ingest_processes}
    return Settings(
        data_dir=root / name,
        kafka=KafkaSettings(
            bootstrap_servers=bootstrap, topic_prefix=f"bench-{name}-{unique}.",
            consumer_group_prefix=f"bench-{name}-{unique}", partitions=4,
        ),
        clickhouse=ClickHouseSettings(url=None, database=f"bench_{name}_{unique}"),
        http=HttpSettings(
            port=free_port(), aggregator_port=free_port(), rater_port=free_port(), api_key=f"bench-key-{unique}",
            **processes,
        ),
        event_time=EventTimeSettings(allowed_lateness_seconds=0.5, grace_seconds=1.0, idle_seconds=1.5),
    )


@dataclass
class IngestOnlyStack(Stack):
    """Only the ingest service (and its topics): its own capacity, nothing else on the CPU."""

    services: tuple[str, ...] = ("ingest",)


def auth(settings: Settings) -> dict[str, str]:
    assert settings.http.api_key is not None
    return {"Authorization": f"Bearer {settings.http.api_key.get_secret_value()}"}


def wait_accepted(stack: Stack, customer: str, run: str, event_time: str, timeout: float = 120.0) -> None:
    """Until the ingest service knows `customer` (its catalog view has caught up)."""
    deadline = time.monotonic() + timeout
    body = {"id": f"{run}-ready", "meter_name": "api_calls", "customer_name": customer, "value": 0,
            "time": event_time}
    last = ""
    while time.monotonic() < deadline:
        response = httpx.post(f"{stack.ingest_url}/measurements", json=body, headers=auth(stack.settings), timeout=30)
        if response.status_code == 202:
            return
        last = response.text
        time.sleep(0.5)
    raise RuntimeError(f"ingest never accepted {customer}: {last}")


def store_totals(stack: Stack, customer: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    response = httpx.get(f"{stack.aggregator_url}/store/totals", params={"customer_name": customer},
                         headers=auth(stack.settings), timeout=timeout)
    response.raise_for_status()
    rows: list[dict[str, Any]] = response.json()
    return rows


def produce_all(producer: Producer, topic: str, records: list[tuple[bytes, bytes]], what: str,
                timeout: float = 120.0) -> float:
    """Produce (key, value) records and wait for every delivery; returns time.time() at the end."""
    for key, value in records:
        producer.produce(topic, value, key)
        producer.poll(0)
    if producer.flush(timeout):
        raise RuntimeError(f"{what} not delivered")
    return time.time()


class LagReader:
    """Committed-offset lag of a consumer group on a topic (what `kafka-consumer-groups` shows)."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        self._consumer = Consumer(consumer_config(bootstrap, group))
        self._topic = topic
        self._partitions = list(self._consumer.list_topics(topic, timeout=10).topics[topic].partitions)

    def lag(self) -> int:
        committed = self._consumer.committed([TopicPartition(self._topic, p) for p in self._partitions], timeout=10)
        total = 0
        for tp in committed:
            _, high = self._consumer.get_watermark_offsets(TopicPartition(self._topic, tp.partition), timeout=10,
                                                           cached=False)
            total += high - max(tp.offset, 0)
        return total

    def wait_zero(self, timeout: float, interval: float = 0.25) -> float | None:
        """time.time() at which the lag was first seen at zero, or None on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.lag() == 0:
                return time.time()
            time.sleep(interval)
        return None

    def close(self) -> None:
        self._consumer.close()


def aggregator_lag(stack: Stack) -> LagReader:
    """The aggregator's committed lag on the stack's measurements topic."""
    return LagReader(stack.bootstrap, f"{stack.settings.kafka.consumer_group_prefix}-aggregator",
                     topics.name(stack.settings, topics.MEASUREMENTS))
