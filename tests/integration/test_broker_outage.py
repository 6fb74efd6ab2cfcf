"""A broker that stops under the ingest service: 503 at once, nothing half-accepted, and the
client's retry after the broker is back lands every measurement exactly once."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Consumer
from fastapi.testclient import TestClient

from services.infra import topics
from services.infra.kafka_broker import LocalKafkaBroker
from services.ingest.api import create_app
from services.ingest.publisher import Publisher
from services.settings import HttpSettings, KafkaSettings, Settings
from shared.catalog import parse_catalog
from tests.support.catalogs import worked_example_catalog
from tests.support.kafka import measurements_in
from tests.unit.test_ingest_api import AUTH, KEY, FakeView

pytestmark = pytest.mark.kafka


def _batch(tag: str) -> list[dict[str, object]]:
    return [{"id": f"{tag}-{i}", "meter_name": "api_calls", "customer_name": "acme", "value": 1} for i in range(300)]


def test_stopped_broker_gives_503_and_the_retry_lands_each_measurement_once(tmp_path: Path) -> None:
    broker = LocalKafkaBroker(tmp_path / "kafka").start()
    publisher: Publisher | None = None
    try:
        settings = Settings(
            http=HttpSettings(api_key=KEY), kafka=KafkaSettings(bootstrap_servers=broker.bootstrap_servers)
        )
        topics.ensure_topics(settings, broker.bootstrap_servers)
        catalog, _ = parse_catalog(worked_example_catalog(datetime.now(UTC) - timedelta(days=2)))
        publisher = Publisher(broker.bootstrap_servers)
        client = TestClient(create_app(settings, FakeView(catalog), publisher))
        assert client.post("/measurements/batch", json=_batch("before"), headers=AUTH).status_code == 202

        broker.stop()
        deadline = time.monotonic() + 30
        while not publisher.all_brokers_down and time.monotonic() < deadline:
            time.sleep(0.2)
        started = time.monotonic()
        refused = client.post("/measurements/batch", json=_batch("during"), headers=AUTH)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
        assert time.monotonic() - started < 5  # refused at once, not after the delivery timeout

        broker.start(fresh=False)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            retried = client.post("/measurements/batch", json=_batch("during"), headers=AUTH)
            if retried.status_code == 202:
                break
            time.sleep(1)
        assert retried.status_code == 202

        consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": "outage-check",
                             "auto.offset.reset": "earliest"})
        consumer.subscribe([topics.name(settings, topics.MEASUREMENTS)])
        ids: Counter[str] = Counter()
        deadline = time.monotonic() + 60
        while sum(ids.values()) < 600 and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                if message.error() is None:
                    ids.update(str(m["id"]) for m in measurements_in(message.value()))
        time.sleep(1)
        for message in consumer.consume(500, timeout=1.0):  # nothing more may follow
            if message.error() is None:
                ids.update(str(m["id"]) for m in measurements_in(message.value()))
        consumer.close()
        assert set(ids) == {m["id"] for m in _batch("before") + _batch("during")}
        assert set(ids.values()) == {1}
    finally:
        if publisher is not None:
            publisher.close(timeout=2)
        broker.stop()
