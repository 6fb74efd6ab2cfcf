"""services/infra/kafka_config.py: the one place Kafka client guarantees are decided."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

from services.infra.kafka_config import (
    KafkaConfig,
    admin_config,
    consumer_config,
    producer_config,
    transactional_producer_config,
)

ROOT = Path(__file__).resolve().parents[2]


def test_a_producer_is_idempotent_with_acks_all_and_partitions_like_faust() -> None:
    config = producer_config("broker:9092")
    assert config == {
        "bootstrap.servers": "broker:9092",
        "enable.idempotence": True,
        "acks": "all",
        "partitioner": "murmur2_random",
        "linger.ms": 5,
    }
    assert producer_config("broker:9092", linger_ms=0)["linger.ms"] == 0


def test_a_transactional_producer_keeps_the_producer_guarantees_and_has_its_id() -> None:
    config = transactional_producer_config("broker:9092", "metering-rater")
    assert config["transactional.id"] == "metering-rater"
    assert {key: config[key] for key in ("enable.idempotence", "acks", "partitioner")} == {
        "enable.idempotence": True, "acks": "all", "partitioner": "murmur2_random",
    }


def test_a_consumer_commits_by_hand_reads_committed_records_and_starts_at_the_beginning() -> None:
    assert consumer_config("broker:9092", "metering-rater") == {
        "bootstrap.servers": "broker:9092",
        "group.id": "metering-rater",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
    }


def test_admin_needs_only_the_brokers() -> None:
    assert admin_config("broker:9092") == {"bootstrap.servers": "broker:9092"}


def test_extra_settings_tune_a_client() -> None:
    config = consumer_config("b:1", "g", extra={"session.timeout.ms": 10000, "enable.partition.eof": True})
    assert config["session.timeout.ms"] == 10000 and config["enable.partition.eof"] is True
    assert producer_config("b:1", extra={"compression.type": "lz4"})["compression.type"] == "lz4"


@pytest.mark.parametrize(("build", "key", "value"), [
    (lambda extra: producer_config("b:1", extra=extra), "acks", "1"),
    (lambda extra: producer_config("b:1", extra=extra), "enable.idempotence", False),
    (lambda extra: transactional_producer_config("b:1", "t", extra=extra), "transactional.id", "other"),
    (lambda extra: consumer_config("b:1", "g", extra=extra), "enable.auto.commit", True),
    (lambda extra: consumer_config("b:1", "g", extra=extra), "isolation.level", "read_uncommitted"),
])
def test_extra_settings_cannot_loosen_a_guarantee(
    build: Callable[[dict[str, Any]], KafkaConfig], key: str, value: object
) -> None:
    with pytest.raises(ValueError, match=re.escape(key)):
        build({key: value})


def test_librdkafka_accepts_every_configuration() -> None:
    # Building a client checks every property name and value; no broker is contacted.
    Producer(producer_config("127.0.0.1:1", extra={"compression.type": "lz4", "message.timeout.ms": 1000}))
    Producer(transactional_producer_config("127.0.0.1:1", "t"))
    Consumer(consumer_config("127.0.0.1:1", "g", extra={"session.timeout.ms": 10000})).close()
    AdminClient(admin_config("127.0.0.1:1"))


def test_no_client_of_the_services_the_bench_or_the_scripts_is_configured_elsewhere() -> None:
    inline = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("services", "bench", "scripts")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.name != "kafka_config.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if '"bootstrap.servers"' in line
    ]
    assert inline == []
