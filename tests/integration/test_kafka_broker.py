"""The local Apache Kafka broker and the two client libraries we depend on agree."""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from services.infra.kafka_broker import LocalKafkaBroker
from services.infra.partitioning import customer_partition, table_partitioner

pytestmark = pytest.mark.kafka


def _topic(bootstrap: str, partitions: int) -> str:
    name = f"compat-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result()
    return name


def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]], **extra: object) -> dict[bytes, int]:
    config = {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
              "partitioner": "murmur2_random", **extra}
    producer = Producer(config)
    placed: dict[bytes, int] = {}

    def on_delivery(error: object, message: object) -> None:
        assert error is None, error
        placed[message.key()] = message.partition()  # type: ignore[attr-defined]

    for key, value in records:
        producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
    assert producer.flush(30) == 0
    return placed


def test_confluent_murmur2_places_keys_where_aiokafka_and_faust_expect_them(kafka_bootstrap: str) -> None:
    topic = _topic(kafka_bootstrap, 6)
    keys = [f"customer-{i}".encode() for i in range(60)] + ["ünïcødé 'quoted'".encode()]
    placed = _produce(kafka_bootstrap, topic, [(k, b"{}") for k in keys])
    java_default = DefaultPartitioner()
    for key in keys:
        assert placed[key] == java_default(key, list(range(6)), list(range(6)))
        assert placed[key] == customer_partition(key.decode(), 6)
        # Table keys ("customer<US>meter<US>...") follow their customer.
        assert table_partitioner(key + b"\x1fapi_calls\x1f\x1f2026", list(range(6)), []) == placed[key]


def test_aiokafka_reads_lz4_batches_from_confluent_and_hides_aborted_transactions(kafka_bootstrap: str) -> None:
    topic = _topic(kafka_bootstrap, 1)
    _produce(kafka_bootstrap, topic, [(b"k", b"committed-%d" % i) for i in range(100)], **{"compression.type": "lz4"})
    transactional = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"tx-{uuid.uuid4()}"})
    transactional.init_transactions(30)
    transactional.begin_transaction()
    transactional.produce(topic, key=b"k", value=b"aborted")
    transactional.flush(10)
    transactional.abort_transaction(30)
    transactional.begin_transaction()
    transactional.produce(topic, key=b"k", value=b"committed-tx")
    transactional.commit_transaction(30)

    async def read_all() -> list[bytes]:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
            isolation_level="read_committed", enable_auto_commit=False,
        )
        await consumer.start()
        values: list[bytes] = []
        try:
            while len(values) < 101:
                batch = await consumer.getmany(timeout_ms=5000)
                if not batch:
                    break
                values += [m.value for records in batch.values() for m in records if m.value is not None]
        finally:
            await consumer.stop()
        return values

    values = asyncio.run(read_all())
    assert len(values) == 101
    assert b"aborted" not in values and values[-1] == b"committed-tx"

    confluent = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"g-{uuid.uuid4()}",
                          "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    confluent.subscribe([topic])
    seen: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(seen) < 101 and time.monotonic() < deadline:
        message = confluent.poll(0.2)
        if message is not None and message.error() is None and message.value() is not None:
            seen.append(message.value())  # type: ignore[arg-type]
    confluent.close()
    del transactional
    assert seen == values


def test_a_stopped_broker_leaves_no_jvm_behind(tmp_path: object) -> None:
    from pathlib import Path

    broker = LocalKafkaBroker(Path(str(tmp_path)) / "kafka").start()
    assert broker.process is not None
    pid = broker.process.pid
    broker.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
