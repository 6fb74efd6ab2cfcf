"""Copies committed invoice events from Kafka into ClickHouse (the store's owner does it).

A plain confluent-kafka consumer with `isolation.level=read_committed`, so an invoice
from an aborted rater transaction is never stored. Offsets are committed only after
the insert, and rows are keyed by invoice_id, so a redelivery is harmless.

A record that is not an invoice can never be stored: it goes to the dead-letter topic
and is skipped, instead of stopping the copy for good. Its dead letter is delivered
(acks=all) before the offset is committed, so it is never lost; a crash in between
writes it again after the restart (at least once, not exactly once: no transactions
here, since the rows go to ClickHouse, not Kafka).
"""

from __future__ import annotations

import logging
import threading

from confluent_kafka import Consumer, KafkaError, Message, Producer
from prometheus_client import Counter
from pydantic import ValidationError

from services.aggregator.writer import StoreWriter
from services.infra import dead_letters, topics
from services.infra.kafka_config import consumer_config, producer_config
from shared.models.invoice import Invoice

log = logging.getLogger(__name__)

# Here rather than in metrics.py: it belongs to this thread, and the module is imported
# by the worker, so the counter is on the aggregator's /metrics from its start.
DEAD_LETTERS = Counter(
    "metering_aggregator_invoice_dead_letters_total",
    "Invoice records the invoice store could not read and dead-lettered",
)
DELIVERY_TIMEOUT_SECONDS = 30.0


class DeadLetterNotDelivered(Exception):
    """The broker did not confirm a dead letter: the offset must not be committed."""


def dead_letter_topic(invoices_topic: str) -> str:
    """The dead-letter topic beside the invoices topic (same prefix)."""
    prefix = invoices_topic.removesuffix(topics.INVOICES.suffix)
    return f"{prefix}{topics.DEAD_LETTERS.suffix}"


class InvoiceStore:
    def __init__(
        self, bootstrap: str, topic: str, group: str, writer: StoreWriter, dead_letters_topic: str | None = None
    ) -> None:
        self._consumer = Consumer(consumer_config(bootstrap, group, extra={"session.timeout.ms": 10000}))
        # Only dead letters go through it, so it stays idle in normal operation.
        self._producer = Producer(producer_config(bootstrap, linger_ms=0))
        self._topic = topic
        self._dead_letters_topic = dead_letters_topic or dead_letter_topic(topic)
        self._writer = writer
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="invoice-store", daemon=True)
        self.failed: Exception | None = None

    def start(self) -> None:
        self._consumer.subscribe([self._topic])
        self._thread.start()

    def stop(self) -> None:
        # Safe at any point, also when a stop arrives before start() ran.
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)
        self._consumer.close()

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                messages = self._consumer.consume(num_messages=500, timeout=0.5)
                if messages:
                    self._store(messages)
        # Exception, not BaseException: this is a worker thread, which KeyboardInterrupt never
        # reaches; anything else ends the thread, and the worker's readiness reports it.
        except Exception as error:
            log.exception("invoice store stopped")
            self.failed = error

    def _store(self, messages: list[Message]) -> None:
        """Insert the batch's invoices, dead-letter the rest, then commit the offsets."""
        rows = []
        letters = []
        for message in messages:
            if message.error() is not None:
                continue
            value = message.value()
            if not value:
                letters.append((message, dead_letters.unreadable("invoice", "invoice", None)))
                continue
            try:
                invoice = Invoice.model_validate_json(value)
            except ValidationError as error:
                letters.append((message, dead_letters.unreadable("invoice", "invoice", error)))
                continue
            rows.append(_row(invoice))
        if rows:
            self._writer.write_invoices(rows)
        if letters:
            self._dead_letter(letters)
        self._consumer.commit(asynchronous=False)

    def _dead_letter(self, letters: list[tuple[Message, str]]) -> None:
        failures: list[KafkaError] = []

        def delivered(error: KafkaError | None, _: Message) -> None:
            if error is not None:
                failures.append(error)

        for message, reason in letters:
            log.warning(
                "dead-lettered %s[%d]@%d: %s", message.topic(), message.partition(), message.offset(), reason,
                extra={"topic": message.topic(), "partition": message.partition(), "offset": message.offset(),
                       "reason": reason},
            )
            copy = dead_letters.of_message(reason, message)
            self._producer.produce(self._dead_letters_topic, key=copy.key, value=copy.value,
                                   headers=copy.headers, on_delivery=delivered)
        undelivered = self._producer.flush(DELIVERY_TIMEOUT_SECONDS)
        if undelivered or failures:
            # Stop without committing: after the restart the records are read and dead-lettered again.
            raise DeadLetterNotDelivered(f"{undelivered} dead letters unconfirmed, errors: {failures}")
        DEAD_LETTERS.inc(len(letters))


def _row(invoice: Invoice) -> list[object]:
    body = invoice.model_dump_json(exclude_none=True)
    return [
        invoice.invoice_id, invoice.revision, invoice.kind, invoice.customer_name,
        invoice.price_plan_name, invoice.period_start, invoice.period_end,
        invoice.currency, invoice.total, invoice.issued_at, body,
    ]
