"""The invoice store's copy loop with fake Kafka clients and a fake writer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from unittest.mock import MagicMock

from prometheus_client import REGISTRY

from services.aggregator.invoice_store import InvoiceStore, dead_letter_topic
from shared.models.invoice import Invoice, InvoiceLine, invoice_id

JAN, FEB = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
COUNTER = "metering_aggregator_invoice_dead_letters_total"


def test_a_stop_before_start_returns_cleanly() -> None:
    # A SIGTERM can arrive while the worker is still starting; stopping must not raise,
    # or Faust's shutdown stalls.
    store = InvoiceStore("127.0.0.1:1", "t", "g", writer=MagicMock())
    store.stop()


def invoice_bytes() -> bytes:
    return Invoice(
        invoice_id=invoice_id("acme", "p", JAN, FEB, 0), revision=0, kind="invoice", customer_name="acme",
        price_plan_name="p", period_start=JAN, period_end=FEB, issued_at=FEB, total=Decimal("1.00"),
        lines=[InvoiceLine(type="base_price", description="fee", quantity=Decimal(1), amount=Decimal("1.00"))],
    ).model_dump_json().encode()


class Message:
    def __init__(self, value: bytes | None, offset: int) -> None:
        self._value, self._offset = value, offset

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes:
        return b"acme"

    def topic(self) -> str:
        return "m.invoices"

    def partition(self) -> int:
        return 1

    def offset(self) -> int:
        return self._offset

    def error(self) -> None:
        return None


class FakeConsumer:
    """Hands out the given batches, then asks the store to stop."""

    def __init__(self, batches: list[list[Message]], log: list[Any], stop: Callable[[], None]) -> None:
        self.batches, self.log, self.stop = batches, log, stop

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        if not self.batches:
            self.stop()
            return []
        return self.batches.pop(0)

    def commit(self, asynchronous: bool) -> None:
        self.log.append(("commit",))

    def close(self) -> None:
        pass


class FakeProducer:
    def __init__(self, log: list[Any], fail: bool = False) -> None:
        self.log, self.fail = log, fail
        self.pending: list[Callable[[Any, Any], None]] = []

    def produce(self, topic: str, key: bytes, value: bytes | None, headers: list[tuple[str, bytes]],
                on_delivery: Callable[[Any, Any], None]) -> None:
        self.log.append(("produce", topic, key, value, dict(headers)))
        self.pending.append(on_delivery)

    def flush(self, timeout: float) -> int:
        self.log.append(("flush",))
        for callback in self.pending:
            callback("broker said no" if self.fail else None, None)
        self.pending.clear()
        return 0


def store_with(batches: list[list[Message]], fail_delivery: bool = False) -> tuple[InvoiceStore, MagicMock, list[Any]]:
    log: list[Any] = []
    writer = MagicMock()
    writer.write_invoices.side_effect = lambda rows: log.append(("write", len(rows)))
    store = InvoiceStore("127.0.0.1:1", "m.invoices", "g", writer=writer)
    store._consumer.close()
    store._consumer = FakeConsumer(batches, log, store._stopping.set)  # type: ignore[assignment]
    store._producer = FakeProducer(log, fail=fail_delivery)  # type: ignore[assignment]
    return store, writer, log


def test_the_dead_letter_topic_sits_beside_the_invoices_topic() -> None:
    assert dead_letter_topic("metering.invoices") == "metering.dead-letters"
    assert dead_letter_topic("t.invoices") == "t.dead-letters"


def test_unreadable_invoices_are_dead_lettered_and_the_store_keeps_running() -> None:
    before = REGISTRY.get_sample_value(COUNTER) or 0.0
    store, _, log = store_with([
        [Message(invoice_bytes(), 10), Message(b"{not json", 11), Message(b'{"invoice_id": "x"}', 12),
         Message(None, 13)],
        [Message(invoice_bytes(), 14)],
    ])
    store._run()

    assert store.failed is None
    letters = [entry for entry in log if entry[0] == "produce"]
    assert [entry[1] for entry in letters] == ["m.dead-letters"] * 3
    assert [entry[3] for entry in letters] == [b"{not json", b'{"invoice_id": "x"}', None]
    reasons = [entry[4]["reason"].decode() for entry in letters]
    assert all(r.startswith("invoice: not a readable invoice (") for r in reasons), reasons
    assert reasons[2] == "invoice: not a readable invoice (empty record)"
    assert letters[0][4]["original_topic"] == b"m.invoices"
    assert (letters[0][4]["original_partition"], letters[0][4]["original_offset"]) == (b"1", b"11")
    # Rows first, dead letters confirmed (flush), only then the offsets; the next batch is stored too.
    assert [entry[0] for entry in log] == [
        "write", "produce", "produce", "produce", "flush", "commit", "write", "commit",
    ]
    assert REGISTRY.get_sample_value(COUNTER) == before + 3


def test_an_unconfirmed_dead_letter_stops_the_store_without_committing() -> None:
    before = REGISTRY.get_sample_value(COUNTER) or 0.0
    store, _, log = store_with([[Message(b"{not json", 11)]], fail_delivery=True)
    store._run()
    assert store.failed is not None
    assert ("commit",) not in log
    assert REGISTRY.get_sample_value(COUNTER) == before
