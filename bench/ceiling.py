"""The ceiling: raw confluent-kafka produce and consume of measurement-sized records.

Same broker, same run, same producer settings as the ingest service's publisher
(idempotent, acks=all, murmur2, linger 5 ms, lz4), but no HTTP, no validation and no
per-record delivery callback: what the broker and the client library can do here.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from services.infra.kafka_config import admin_config, consumer_config, producer_config
from services.infra.topics import _await_leaders


@dataclass
class Ceiling:
    messages: int
    value_bytes: int
    produce_per_s: float
    consume_per_s: float
    produce_s: float
    consume_s: float


def measurement_values(count: int, customers: int) -> list[tuple[bytes, bytes]]:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return [
        (
            f"cust-{i % customers:06d}".encode(),
            (f'{{"id":"ceiling-{i:09d}","meter_name":"api_calls","customer_name":"cust-{i % customers:06d}",'
             f'"value":"1","time":"{now}","labels":{{}},"reset_total":false}}').encode(),
        )
        for i in range(count)
    ]


def measure(bootstrap: str, messages: int, partitions: int) -> Ceiling:
    topic = f"bench-ceiling-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(admin_config(bootstrap))
    for future in admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)]).values():
        future.result()
    _await_leaders(admin, [topic], 30)
    records = measurement_values(messages, 1000)
    producer = Producer(producer_config(
        bootstrap, extra={"compression.type": "lz4", "queue.buffering.max.messages": 500_000}
    ))
    producer.list_topics(topic, timeout=10)  # connected before the clock starts
    started = time.perf_counter()
    for index, (key, value) in enumerate(records):
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.01)
        if index % 1000 == 0:
            producer.poll(0)
    remaining = producer.flush(120)
    produce_s = time.perf_counter() - started
    if remaining:
        raise RuntimeError(f"ceiling producer: {remaining} records undelivered")

    consumer = Consumer(consumer_config(
        bootstrap, f"bench-ceiling-{uuid.uuid4().hex[:8]}", extra={"fetch.max.bytes": 52428800}
    ))
    started = time.perf_counter()
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    seen = 0
    deadline = time.monotonic() + 120
    while seen < messages and time.monotonic() < deadline:
        for message in consumer.consume(num_messages=10_000, timeout=1.0):
            if message.error() is None:
                seen += 1
    consume_s = time.perf_counter() - started
    consumer.close()
    admin.delete_topics([topic])
    if seen < messages:
        raise RuntimeError(f"ceiling consumer read {seen} of {messages}")
    return Ceiling(
        messages=messages, value_bytes=round(sum(len(v) for _, v in records) / len(records)),
        produce_per_s=messages / produce_s, consume_per_s=messages / consume_s,
        produce_s=produce_s, consume_s=consume_s,
    )
