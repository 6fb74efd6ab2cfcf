"""Copies committed invoice events from Kafka into ClickHouse (the store's owner does it).

A plain confluent-kafka consumer with `isolation.level=read_committed`, so an invoice
from an aborted rater transaction is never stored. Offsets are committed only after
the insert, and rows are keyed by invoice_id, so a redelivery is harmless.
"""

from __future__ import annotations

import logging
import threading

from confluent_kafka import Consumer

from services.aggregator.writer import StoreWriter
from shared.models.invoice import Invoice

log = logging.getLogger(__name__)


class InvoiceStore:
    def __init__(self, bootstrap: str, topic: str, group: str, writer: StoreWriter) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 10000,
            }
        )
        self._topic = topic
        self._writer = writer
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="invoice-store", daemon=True)
        self.failed: BaseException | None = None

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
                rows = []
                for message in messages:
                    if message.error() is not None or message.value() is None:
                        continue
                    invoice = Invoice.model_validate_json(message.value() or b"")
                    rows.append(_row(invoice))
                if rows:
                    self._writer.write_invoices(rows)
                if messages:
                    self._consumer.commit(asynchronous=False)
        except BaseException as error:  # the worker's readiness reports it
            log.exception("invoice store stopped")
            self.failed = error


def _row(invoice: Invoice) -> list[object]:
    body = invoice.model_dump_json(exclude_none=True)
    return [
        invoice.invoice_id, invoice.revision, invoice.kind, invoice.customer_name,
        invoice.price_plan_name, invoice.period_start, invoice.period_end,
        invoice.currency, invoice.total, invoice.issued_at, body,
    ]
