"""A live view of the catalog, kept current from the compacted catalog topic.

Each service holds one. A background thread reads the topic from the beginning and
applies every entity (or tombstone) to an in-memory Catalog; `sync()` blocks until the
view has read everything written before the call, which is how a service makes sure
it knows about an entity another service has just accepted.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from services.infra import topics
from services.settings import Settings
from shared.catalog import MODELS, Catalog, entities
from shared.models import Customer, Meter, PricePlan, Subscription

log = logging.getLogger(__name__)

Entity = Customer | Meter | PricePlan | Subscription


def entity_key(kind: str, key: str) -> bytes:
    return f"{kind}/{key}".encode()


class CatalogView:
    def __init__(self, settings: Settings, bootstrap: str) -> None:
        self.catalog = Catalog()
        self._topic = topics.name(settings, topics.CATALOG)
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"{settings.consumer_group_prefix}-catalog-view",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": False,
            }
        )
        # A second client only for end offsets: asking the consuming client while its
        # thread sits in consume() can block both.
        self._offsets = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{settings.consumer_group_prefix}-catalog-offsets"})
        self._positions: dict[int, int] = {}
        self._progress = threading.Condition()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="catalog-view", daemon=True)
        self._lock = threading.Lock()
        self.ready = False
        # Grows with every applied batch, so a reader can tell the catalog changed.
        self.version = 0

    def start(self, timeout: float = 30.0) -> "CatalogView":
        metadata = self._consumer.list_topics(self._topic, timeout=timeout)
        partitions = list(metadata.topics[self._topic].partitions)
        # assign(), not subscribe(): every instance reads the whole topic, no group.
        self._consumer.assign([TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in partitions])
        self._positions = {p: 0 for p in partitions}
        self._thread.start()
        self.sync(timeout)
        self.ready = True
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._consumer.close()
        self._offsets.close()

    def sync(self, timeout: float = 10.0) -> bool:
        """Wait until everything in the topic at call time has been applied."""
        deadline = time.monotonic() + timeout
        targets = {}
        for partition in self._positions:
            while True:
                try:
                    _, high = self._offsets.get_watermark_offsets(
                        TopicPartition(self._topic, partition), timeout=max(deadline - time.monotonic(), 0.1),
                        cached=False,
                    )
                    break
                except KafkaException:
                    # e.g. the topic is brand new and its leader not elected yet
                    if time.monotonic() > deadline:
                        return False
                    time.sleep(0.2)
            targets[partition] = high
        with self._progress:
            while any(self._positions.get(p, 0) < high for p, high in targets.items()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._progress.wait(min(left, 0.2))
        return True

    def _run(self) -> None:
        while not self._stopping.is_set():
            messages = self._consumer.consume(num_messages=5000, timeout=0.2)
            if not messages:
                continue
            with self._lock:
                for message in messages:
                    error = message.error()
                    if error is not None:
                        if error.code() != KafkaError._PARTITION_EOF:
                            log.warning("catalog topic error: %s", error)
                        continue
                    self._apply(message.key(), message.value())
                self.version += 1
            with self._progress:
                for message in messages:
                    if message.error() is None:
                        partition, offset = message.partition(), message.offset()
                        if partition is not None and offset is not None:
                            self._positions[partition] = offset + 1
                self._progress.notify_all()

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        kind, _, name = key.decode().partition("/")
        if kind not in MODELS:
            log.warning("catalog record with unknown kind %r ignored", kind)
            return
        if value is None:
            self.catalog.delete(kind, name)
            return
        try:
            self.catalog.put(MODELS[kind].model_validate_json(value))
        except ValueError:
            # Only validated entities are written, so this means a newer writer
            # wrote a shape this version does not know. Keep going; say so loudly.
            log.exception("catalog record %s could not be read", key.decode())


def publish(settings: Settings, bootstrap: str, changes: list[tuple[str, str, Entity | None]]) -> None:
    """Write entities (or deletions, as None) to the catalog topic and wait for the broker."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5}
    )
    failures: list[str] = []

    def on_delivery(error: Any, message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    topic = topics.name(settings, topics.CATALOG)
    for kind, key, entity in changes:
        value = None if entity is None else entity.model_dump_json(exclude_none=True).encode()
        producer.produce(topic, key=entity_key(kind, key), value=value, on_delivery=on_delivery)
        producer.poll(0)
    remaining = producer.flush(30)
    if remaining or failures:
        raise RuntimeError(f"catalog write failed: {failures or f'{remaining} undelivered'}")


def publish_catalog(settings: Settings, bootstrap: str, catalog: Catalog) -> int:
    changes: list[tuple[str, str, Entity | None]] = [
        (kind, key, entity) for kind, key, entity in entities(catalog)
    ]
    publish(settings, bootstrap, changes)
    return len(changes)


def dump(entity: Entity) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(entity.model_dump_json(exclude_none=True))
    return result
