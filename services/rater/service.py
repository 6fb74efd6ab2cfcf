"""The rater's loop: consume PeriodTotals, publish invoices, exactly once.

Consume-transform-produce in Kafka transactions: the invoice records and the consumer
offsets of the PeriodTotals that caused them commit together, or not at all. A fixed
`transactional.id` fences a zombie instance. Re-runs and replays are absorbed by the
ledger (rebuilt from the invoices topic at start): an unchanged period rates to no
difference, so nothing new is published.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, Producer, TopicPartition
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from services.infra import dead_letters, topics
from services.infra.catalog_view import CatalogView
from services.infra.kafka_config import consumer_config, transactional_producer_config
from services.rater.invoicing import UnknownPlan, immediate_invoice_for, invoice_for
from services.rater.ledger import Ledger
from services.rater.metrics import DEAD_LETTERS, PERIODS_CLOSED, RATING, UNCHANGED, count_published
from services.settings import Settings
from shared.models.invoice import Invoice, PeriodTotals

log = logging.getLogger("metering.rater")


@dataclass(frozen=True)
class DeadLetter:
    """A PeriodTotals record that can never be rated: it goes to the dead-letter topic."""

    label: str  # bounded metric label (metrics.DEAD_LETTER_REASONS)
    reason: str  # the `reason` header, "<field>: <why>"


def load_ledger(bootstrap: str, topic: str, timeout: float = 30.0) -> Ledger:
    ledger = Ledger()
    consumer = Consumer(consumer_config(bootstrap, "unused-ledger-reader"))
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        ends = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        done: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(done) < len(ends):
            if time.monotonic() > deadline:
                raise TimeoutError("could not read the invoices topic to its end")
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                if message.error() is None and message.value() is not None:
                    ledger.record(Invoice.model_validate_json(message.value() or b""))
            for p, end in ends.items():
                # Transaction markers occupy offsets too, so compare positions, not counts.
                position = consumer.position([TopicPartition(topic, p)])[0].offset
                if position >= end:
                    done.add(p)
    finally:
        consumer.close()
    return ledger


class Rater:
    def __init__(self, settings: Settings, bootstrap: str) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.view = CatalogView(settings, bootstrap)
        self.invoices_topic = topics.name(settings, topics.INVOICES)
        self.totals_topic = topics.name(settings, topics.PERIOD_TOTALS)
        self.dead_letters_topic = topics.name(settings, topics.DEAD_LETTERS)
        self.ready = False
        self.stopping = threading.Event()

    def run(self) -> None:
        self.view.start()
        group = f"{self.settings.kafka.consumer_group_prefix}-rater"
        producer = Producer(transactional_producer_config(self.bootstrap, transactional_id=group))
        # Fences any older instance and aborts its open transaction before we read.
        producer.init_transactions(60)
        ledger = load_ledger(self.bootstrap, self.invoices_topic)
        consumer = Consumer(consumer_config(self.bootstrap, group, extra={"session.timeout.ms": 10000}))
        consumer.subscribe([self.totals_topic])
        self.ready = True
        log.info("rater ready (%d invoiced periods known)", len(ledger.revisions))
        seen_version = -1
        try:
            while not self.stopping.is_set():
                if self.view.version != seen_version:
                    seen_version = self.view.version
                    self._charge_immediately(producer, ledger)
                messages = [m for m in consumer.consume(num_messages=500, timeout=0.5) if m.error() is None]
                if messages:
                    self._transact(producer, consumer, ledger, messages)
        finally:
            self.ready = False
            consumer.close()
            producer.flush(10)
            self.view.stop()

    def _transact(self, producer: Producer, consumer: Consumer, ledger: Ledger, messages: list[Message]) -> None:
        """Rate a batch; its invoices, dead letters and consumer offsets commit together.

        A record that can never be rated is dead-lettered in the same transaction that
        commits its offset, so it is dead-lettered exactly once and the rater goes on.
        """
        producer.begin_transaction()
        published: list[Invoice] = []
        rejected: list[DeadLetter] = []
        unchanged = 0
        try:
            for message in messages:
                outcome = self._rate(message.value(), ledger)
                if outcome is None:
                    unchanged += 1
                elif isinstance(outcome, DeadLetter):
                    self._dead_letter(producer, message, outcome)
                    rejected.append(outcome)
                else:
                    producer.produce(
                        self.invoices_topic, key=outcome.customer_name.encode(),
                        value=outcome.model_dump_json(exclude_none=True).encode(),
                    )
                    ledger.record(outcome)
                    published.append(outcome)
            producer.send_offsets_to_transaction(
                consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), 30
            )
            producer.commit_transaction(60)
        except Exception:
            # A failure here (broker trouble, a catalog view that could not catch up) is
            # not the record's fault: abort, stop, and let the restart rate it again.
            log.exception("transaction failed; aborting and stopping for a clean restart")
            producer.abort_transaction(30)
            raise
        # Counted only once committed: an aborted batch is rated again after the restart.
        UNCHANGED.inc(unchanged)
        for letter in rejected:
            DEAD_LETTERS.labels(letter.label).inc()
        for invoice in published:
            count_published(invoice)
            log.info(
                "published %s %s rev %d for %s: total %s", invoice.kind, invoice.invoice_id,
                invoice.revision, invoice.customer_name, invoice.total,
                extra={"invoice_id": invoice.invoice_id, "customer_name": invoice.customer_name},
            )

    def _dead_letter(self, producer: Producer, message: Message, letter: DeadLetter) -> None:
        log.warning(
            "dead-lettered %s[%d]@%d: %s", message.topic(), message.partition(), message.offset(), letter.reason,
            extra={"topic": message.topic(), "partition": message.partition(), "offset": message.offset(),
                   "reason": letter.reason},
        )
        copy = dead_letters.of_message(letter.reason, message)
        producer.produce(self.dead_letters_topic, key=copy.key, value=copy.value, headers=copy.headers)

    def _charge_immediately(self, producer: Producer, ledger: Ledger) -> None:
        """Publish the immediate invoice of each subscription whose add-ons ask for one.

        Checked whenever the catalog changes; the ledger makes it once per subscription.
        """
        catalog = self.view.catalog
        now = datetime.now(UTC)
        due = []
        for subscription in list(catalog.subscriptions.values()):
            plan = catalog.price_plans.get(subscription.price_plan_name)
            if plan is None:
                continue
            invoice = immediate_invoice_for(plan, subscription, ledger, now)
            if invoice is not None:
                due.append(invoice)
        if not due:
            return
        producer.begin_transaction()
        try:
            for invoice in due:
                producer.produce(self.invoices_topic, key=invoice.customer_name.encode(),
                                 value=invoice.model_dump_json(exclude_none=True).encode())
            producer.commit_transaction(60)
        except KafkaException:
            producer.abort_transaction(30)
            raise
        for invoice in due:
            ledger.record(invoice)
            count_published(invoice)
            log.info("published immediate %s %s for %s: total %s", invoice.kind, invoice.invoice_id,
                     invoice.customer_name, invoice.total)

    def _rate(self, raw: bytes | None, ledger: Ledger) -> Invoice | DeadLetter | None:
        """The invoice to publish, None when nothing changed, or why it can never be rated."""
        if not raw:
            return DeadLetter("unreadable", dead_letters.unreadable("period_totals", "PeriodTotals", None))
        try:
            event = PeriodTotals.model_validate_json(raw)
        except ValidationError as error:
            return DeadLetter("unreadable", dead_letters.unreadable("period_totals", "PeriodTotals", error))
        PERIODS_CLOSED.labels(event.reason).inc()
        with RATING.time():
            try:
                return invoice_for(event, self.view.catalog, ledger, datetime.now(UTC))
            except UnknownPlan:
                # Another service may have just added the plan: catch up once, then judge.
                if not self.view.sync(10):
                    raise  # the view is behind, not the record wrong: retry after a restart
            try:
                return invoice_for(event, self.view.catalog, ledger, datetime.now(UTC))
            except UnknownPlan:
                return DeadLetter(
                    "unknown_plan",
                    f"price_plan_name: unknown plan {event.price_plan_name!r} (not in the catalog after a sync)",
                )


def serve_health(rater: Rater, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                self._send(200, b'{"status":"alive"}', "application/json")
            elif self.path == "/readyz":
                ok = rater.ready and rater.view.ready
                self._send(200 if ok else 503, b'{"ready":%s}' % (b"true" if ok else b"false"), "application/json")
            else:
                self._send(404, b'{"error":"not found"}', "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="rater-http", daemon=True).start()
    return server
