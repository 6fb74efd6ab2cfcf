"""On the real broker: every acknowledged measurement is on the topic, keyed by customer,
in the partition Kafka's default partitioner (and so the aggregator) expects."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Consumer
from fastapi.testclient import TestClient

from services.infra import topics
from services.infra.partitioning import customer_partition
from services.ingest.api import create_app
from services.ingest.publisher import Publisher
from services.settings import HttpSettings, KafkaSettings, Settings
from shared.catalog import parse_catalog
from tests.support.catalogs import worked_example_catalog
from tests.support.kafka import measurements_in
from tests.unit.test_ingest_api import AUTH, KEY, FakeView

pytestmark = pytest.mark.kafka


def test_acknowledged_measurements_all_arrive_keyed_by_customer(kafka_bootstrap: str) -> None:
    unique = uuid.uuid4().hex[:8]
    settings = Settings(
        http=HttpSettings(api_key=KEY),
        kafka=KafkaSettings(topic_prefix=f"d{unique}.", partitions=3, bootstrap_servers=kafka_bootstrap),
    )
    topics.ensure_topics(settings, kafka_bootstrap)
    customers = ("acme", "globex", "o'brien 顧客")
    catalog, problems = parse_catalog(worked_example_catalog(datetime.now(UTC) - timedelta(days=2), customers))
    assert problems == []
    publisher = Publisher(kafka_bootstrap, partitions=settings.kafka.partitions)
    try:
        client = TestClient(create_app(settings, FakeView(catalog), publisher))
        sent: dict[str, str] = {}
        for round_ in range(5):
            batch = [{"id": f"{round_}-{i}", "meter_name": "api_calls", "customer_name": customers[i % 3], "value": i}
                     for i in range(400)]
            response = client.post("/measurements/batch", json=batch, headers=AUTH)
            assert response.status_code == 202 and response.json() == {"accepted": 400}
            sent.update({m["id"]: m["customer_name"] for m in batch})
    finally:
        publisher.close()

    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"check-{unique}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topics.name(settings, topics.MEASUREMENTS)])
    received: dict[str, tuple[bytes, int]] = {}
    records = 0
    deadline = time.monotonic() + 60
    while len(received) < len(sent) and time.monotonic() < deadline:
        for message in consumer.consume(500, timeout=0.5):
            if message.error() is None:
                records += 1
                for body in measurements_in(message.value()):
                    received[str(body["id"])] = (message.key() or b"", message.partition() or 0)
    consumer.close()
    assert set(received) == set(sent)
    # One envelope per partition per request: 5 requests x 3 customers' partitions at most.
    assert records <= 5 * 3
    for measurement_id, (key, partition) in received.items():
        customer = sent[measurement_id]
        # The envelope is keyed by one of its customers; all of them share its partition.
        assert partition == customer_partition(customer, 3)
        assert customer_partition(key.decode(), 3) == partition
