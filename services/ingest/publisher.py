"""Produces measurements to Kafka and resolves only when the broker acknowledged all.

confluent-kafka delivers reports on a poll thread; each batch gets one asyncio future
that completes when every record of the batch has its report (success or the first
failure). The producer is idempotent with acks=all, so a broker retry never
duplicates, and a client retry is absorbed by the measurement id.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from services.infra.kafka_config import GUARANTEES, producer_config
from services.ingest.envelopes import ENVELOPE_BYTES, pack
from services.settings import MAX_RECORD_BYTES

MAX_QUEUE = 500_000

# Producer settings chosen by measurement, merged over the fixed ones in Publisher
# (idempotence and acks=all are not negotiable and cannot be overridden).
# `python -m bench.produce_settings` (2026-12-01, docs/benchmarks.md), the Publisher
# itself, 8 publishes of 1,000 measurements in flight, two runs: lz4/linger 2 ms 798k and
# 1,012k measurements/s (p50 8.5/7.2 ms); lz4/linger 5 790k/926k (9.1/8.4 ms); zstd 772k/
# 828k; no compression 606k; linger 20 ms 294k (p50 26 ms); batch.size 4 MB 821k/687k and
# max.in.flight 1 700k: no better than librdkafka's defaults, so left at them. About
# 1 µs of client CPU per measurement in every case: with envelopes the producer is
# not what limits the ingest service.
PRODUCER_OVERRIDES: dict[str, object] = {
    "compression.type": "lz4",
    "linger.ms": 2,
}


class Unavailable(Exception):
    """The broker cannot take the batch now; the client should retry later."""


class RecordTooLarge(Exception):
    """A record of the batch exceeds the record limit; nothing of the batch was produced."""

    def __init__(self, index: int, size: int, limit: int) -> None:
        super().__init__(f"record {index} is {size} bytes; at most {limit}")
        self.index, self.size, self.limit = index, size, limit


@dataclass
class _Batch:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]
    pending: int
    failed: bool = False


class Publisher:
    def __init__(
        self, bootstrap: str, delivery_timeout_ms: int = 15000, max_record_bytes: int = MAX_RECORD_BYTES,
        partitions: int = 1, overrides: dict[str, object] | None = None,
    ) -> None:
        self.max_record_bytes = max_record_bytes
        self.partitions = partitions  # of the measurements topic: envelopes group by partition
        # Set by librdkafka's error callback when every broker is down, cleared by the
        # next successful delivery: while set, batches are refused at once with a 503
        # instead of waiting out the delivery timeout.
        self.all_brokers_down = False
        # The delivery guarantees are the factory's: an override cannot weaken them.
        tuning = {k: v for k, v in (PRODUCER_OVERRIDES if overrides is None else overrides).items()
                  if k not in GUARANTEES}
        linger_ms = int(str(tuning.pop("linger.ms", 5)))
        self._producer = Producer(producer_config(bootstrap, linger_ms=linger_ms, extra={
            "queue.buffering.max.messages": MAX_QUEUE,
            "message.timeout.ms": delivery_timeout_ms,
            "error_cb": self._on_client_error,
            **tuning,
        }))
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="kafka-delivery", daemon=True)
        self._thread.start()

    def _on_client_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self.all_brokers_down = True

    def _poll(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(0.05)

    def queue_depth(self) -> int:
        return len(self._producer)

    def broker_reachable(self, timeout: float = 2.0) -> bool:
        try:
            metadata = self._producer.list_topics(timeout=timeout)
        except KafkaException:  # its timeout, or no broker answering
            return False
        reachable = bool(metadata.brokers)
        if reachable:
            self.all_brokers_down = False
        return reachable

    async def publish(self, topic: str, records: list[tuple[bytes, bytes]]) -> None:
        """Produce all records, packed into envelopes (envelopes.py); return once all are
        acknowledged, else raise Unavailable.

        RecordTooLarge is raised before anything is produced: librdkafka refuses an
        oversized record only when it reaches it, after the records before it are queued.
        """
        if not records:
            return
        _check_sizes(records, self.max_record_bytes)
        records = pack(records, self.partitions, min(ENVELOPE_BYTES, self.max_record_bytes))
        if self.all_brokers_down and not self.broker_reachable(timeout=0.5):
            raise Unavailable("no broker is reachable")
        if len(self._producer) + len(records) > MAX_QUEUE:
            raise Unavailable("producer queue is full")
        loop = asyncio.get_running_loop()
        batch = _Batch(loop, loop.create_future(), len(records))

        def on_delivery(error: KafkaError | None, _message: Any) -> None:
            if error is not None and not batch.failed:
                batch.failed = True
                loop.call_soon_threadsafe(_settle, batch.future, Unavailable(str(error)))
                return
            self.all_brokers_down = False
            batch.pending -= 1  # only this poll thread touches pending
            if batch.pending == 0 and not batch.failed:
                loop.call_soon_threadsafe(_settle, batch.future, None)

        try:
            for key, value in records:
                self._producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
        except BufferError as error:
            # Records already queued will still be delivered; the client's retry is
            # deduplicated by measurement id, so reporting failure here is safe.
            raise Unavailable("producer queue is full") from error
        except KafkaException as error:
            # Any other refusal by the client (e.g. a fatal idempotence error): the same
            # reasoning holds, and a 503 tells the client more than a 500 would.
            raise Unavailable(f"producer refused a record: {error}") from error
        await batch.future

    def close(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._producer.flush(timeout)


def _check_sizes(records: list[tuple[bytes, bytes]], limit: int) -> None:
    for index, (key, value) in enumerate(records):
        size = len(key) + len(value)
        if size > limit:
            raise RecordTooLarge(index, size, limit)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
