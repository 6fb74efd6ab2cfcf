"""A live view of the catalog, kept current from the compacted catalog topic.

Each service holds one. A background thread reads the topic from the beginning and
applies every entity (or tombstone) to an in-memory Catalog; `sync()` blocks until the
view has read everything written before the call, which is how a service makes sure
it knows about an entity another service has just accepted.

A record the view cannot read (a key that is not UTF-8, a value that is no entity of
its kind) is skipped, logged and counted (metering_catalog_records_skipped_total): one
bad record must not stop every service from following the catalog. Anything else that
stops the thread makes `ready` false for good, so /readyz says so.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from prometheus_client import Counter

from services.infra import topics
from services.infra.kafka_config import consumer_config, producer_config
from services.settings import Settings
from shared.catalog import MODELS, Catalog, Entity, entities
from shared.models import Subscription

log = logging.getLogger(__name__)

SKIPPED = Counter(
    "metering_catalog_records_skipped_total",
    "Catalog records the view could not read and skipped, by the unreadable part",
    ["part"],
)
for _part in ("key", "kind", "value"):
    SKIPPED.labels(_part)


def entity_key(kind: str, key: str) -> bytes:
    return f"{kind}/{key}".encode()


class CatalogView:
    def __init__(self, settings: Settings, bootstrap: str) -> None:
        self.catalog = Catalog()
        self._topic = topics.name(settings, topics.CATALOG)
        group = settings.kafka.consumer_group_prefix
        self._consumer = Consumer(
            consumer_config(bootstrap, f"{group}-catalog-view", extra={"enable.partition.eof": False})
        )
        # A second client only for end offsets: asking the consuming client while its
        # thread sits in consume() can block both.
        self._offsets = Consumer(consumer_config(bootstrap, f"{group}-catalog-offsets"))
        self._positions: dict[int, int] = {}
        self._progress = threading.Condition()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="catalog-view", daemon=True)
        self._lock = threading.Lock()
        self._loaded = False
        # Set when the thread has ended, by stop() or by an error: the view no longer follows.
        self._ended = threading.Event()
        # Grows with every applied batch, so a reader can tell the catalog changed.
        self.version = 0

    def start(self, timeout: float = 30.0) -> CatalogView:
        metadata = self._consumer.list_topics(self._topic, timeout=timeout)
        partitions = list(metadata.topics[self._topic].partitions)
        # assign(), not subscribe(): every instance reads the whole topic, no group.
        self._consumer.assign([TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in partitions])
        self._positions = dict.fromkeys(partitions, 0)
        self._thread.start()
        self.sync(timeout)
        self._loaded = True
        return self

    @property
    def ready(self) -> bool:
        """Loaded, and still following the topic (false for good once the thread ended)."""
        return self._loaded and not self._ended.is_set()

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
                if left <= 0 or self._ended.is_set():
                    return False  # a view that stopped will never catch up
                self._progress.wait(min(left, 0.2))
        return True

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._consume_batch()
        except Exception:
            log.exception("catalog view stopped: this service no longer follows the catalog and is not ready")
        finally:
            self._ended.set()
            with self._progress:
                self._progress.notify_all()  # sync() callers return False now, not at their deadline

    def _consume_batch(self) -> None:
        messages = self._consumer.consume(num_messages=5000, timeout=0.2)
        if not messages:
            return
        with self._lock:
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:
                        log.warning("catalog topic error: %s", error)
                    continue
                self._apply(message)
            self.version += 1
        with self._progress:
            for message in messages:
                if message.error() is None:
                    partition, offset = message.partition(), message.offset()
                    if partition is not None and offset is not None:
                        self._positions[partition] = offset + 1
            self._progress.notify_all()

    def _apply(self, message: Message) -> None:
        key, value = message.key(), message.value()
        where = f"partition {message.partition()} offset {message.offset()}"
        if key is None:  # a compacted topic refuses keyless records; counted should one appear
            _skip("key", "catalog record at %s skipped: it has no key", where)
            return
        try:
            kind, _, name = key.decode().partition("/")
        except UnicodeDecodeError:
            _skip("key", "catalog record at %s skipped: its key %r is not UTF-8", where, key[:200])
            return
        if kind not in MODELS:
            _skip("kind", "catalog record at %s skipped: unknown kind %r", where, kind[:200])
            return
        if value is None:
            self.catalog.delete(kind, name)
            return
        try:
            entity = MODELS[kind].model_validate_json(value)
        except ValueError as error:  # pydantic's ValidationError, for bad JSON too
            # Only validated entities are written, so this is a writer this version does
            # not know (a newer shape, or no validation at all). Keep going; say so loudly.
            _skip("value", "catalog record %r at %s skipped: its value could not be read: %s", key[:200], where, error)
            return
        own_key = entity.key if isinstance(entity, Subscription) else entity.name
        if own_key != name:
            # Its tombstone (keyed by `name`) could never delete it, and compaction would
            # keep both: the view must agree with what a restart reads back.
            _skip("value", "catalog record %r at %s skipped: it holds %r, not the entity its key names",
                  key[:200], where, own_key[:200])
            return
        self.catalog.put(entity)


def _skip(part: str, message: str, *args: object) -> None:
    SKIPPED.labels(part).inc()
    log.error(message, *args)


def publish(settings: Settings, bootstrap: str, changes: Sequence[tuple[str, str, Entity | None]]) -> None:
    """Write entities (or deletions, as None) to the catalog topic and wait for the broker."""
    producer = Producer(producer_config(bootstrap))
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
    changes = list(entities(catalog))
    publish(settings, bootstrap, changes)
    return len(changes)
