"""Test helpers that read the pipeline's topics from outside, as a consumer would."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, TopicPartition

from shared.models.invoice import Invoice


def read_invoices(bootstrap: str, topic: str, expected: int, timeout: float, settle: float = 0.0) -> list[Invoice]:
    """Read committed invoices until `expected` arrived, then keep listening `settle` s."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"reader-{time.monotonic_ns()}",
         "auto.offset.reset": "earliest", "isolation.level": "read_committed", "enable.auto.commit": False}
    )
    consumer.subscribe([topic])
    found: list[Invoice] = []
    deadline = time.monotonic() + timeout
    settle_until: float | None = None
    try:
        while True:
            now = time.monotonic()
            if settle_until is None and len(found) >= expected:
                settle_until = now + settle
            if (settle_until is not None and now >= settle_until) or now >= deadline:
                break
            message = consumer.poll(0.2)
            if message is not None and message.error() is None and message.value():
                found.append(Invoice.model_validate_json(message.value() or b""))
    finally:
        consumer.close()
    return found


def group_lag(bootstrap: str, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        lag = 0
        for tp in committed:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
            lag += high - max(tp.offset, 0)
        return lag
    finally:
        consumer.close()


def wait_for_no_lag(bootstrap: str, group: str, topic: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if group_lag(bootstrap, group, topic) == 0:
            return
        time.sleep(0.3)
    raise AssertionError(f"consumer group {group} still lags on {topic} after {timeout}s")


def measurements_in(value: bytes | None) -> list[dict[str, object]]:
    """The measurements of a measurements-topic record: one object, or an envelope (array)."""
    import json

    body = json.loads(value or b"{}")
    return body if isinstance(body, list) else [body]
