"""The rater's transaction loop with fake Kafka clients: corrections, dead letters, offsets.

Rater._transact is driven with a fake transactional producer and consumer that record
what happens in which order, so the tests see exactly what a transaction holds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from prometheus_client import REGISTRY

from services.rater import service
from services.rater.invoicing import UnknownPlan
from services.rater.ledger import Ledger
from services.settings import KafkaSettings, Settings
from shared.catalog import Catalog, parse_catalog
from shared.models.invoice import PeriodTotals

JAN, FEB = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
TOTALS_TOPIC, DEAD_LETTERS_TOPIC, INVOICES_TOPIC = "t.period-totals", "t.dead-letters", "t.invoices"


def catalog() -> Catalog:
    parsed, problems = parse_catalog({
        "meters": [{"name": "api_calls"}],
        "price_plans": [{
            "name": "usage-plan", "period": "monthly", "base_price": 0,
            "metered_components": [{"meter_name": "api_calls", "meter_display_name": "API calls",
                                    "price_scheme": {"scheme_type": "FLAT", "prices": [{"price": 0.01}]}}],
        }],
        "customers": [{"name": "acme"}],
        "subscriptions": [
            {"customer_name": "acme", "price_plan_name": "usage-plan", "start_time": "2026-01-01T00:00:00Z"},
        ],
    })
    assert problems == []
    return parsed


def totals(calls: int, plan: str = "usage-plan", reason: str = "closed") -> bytes:
    return PeriodTotals(
        customer_name="acme", price_plan_name=plan, subscription_start=JAN, period_index=0,
        period_start=JAN, period_end=FEB, reason=reason, watermark=FEB,  # type: ignore[arg-type]
        totals={"api_calls": {"": Decimal(calls)}},
    ).model_dump_json().encode()


class FakeView:
    def __init__(self, synced: bool = True) -> None:
        self.catalog = catalog()
        self.version = 0
        self.synced = synced
        self.syncs = 0

    def sync(self, timeout: float = 10.0) -> bool:
        self.syncs += 1
        return self.synced


class FakeMessage:
    def __init__(self, value: bytes | None, offset: int, partition: int = 2) -> None:
        self._value, self._offset, self._partition = value, offset, partition

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes:
        return b"acme"

    def topic(self) -> str:
        return TOTALS_TOPIC

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def error(self) -> None:
        return None


class FakeProducer:
    """Records the transactional calls in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def begin_transaction(self) -> None:
        self.calls.append(("begin",))

    def produce(self, topic: str, key: bytes | None = None, value: bytes | None = None,
                headers: list[tuple[str, bytes]] | None = None) -> None:
        self.calls.append(("produce", topic, key, value, dict(headers or [])))

    def send_offsets_to_transaction(self, positions: Any, metadata: Any, timeout: float) -> None:
        self.calls.append(("offsets", positions))

    def commit_transaction(self, timeout: float) -> None:
        self.calls.append(("commit",))

    def abort_transaction(self, timeout: float) -> None:
        self.calls.append(("abort",))

    def produced(self, topic: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == "produce" and c[1] == topic]


class FakeConsumer:
    POSITIONS: ClassVar[list[str]] = ["position after the batch"]

    def assignment(self) -> list[str]:
        return ["assigned partitions"]

    def position(self, partitions: list[str]) -> list[str]:
        return self.POSITIONS

    def consumer_group_metadata(self) -> str:
        return "group metadata"


@pytest.fixture
def view(monkeypatch: pytest.MonkeyPatch) -> FakeView:
    fake = FakeView()
    monkeypatch.setattr(service, "CatalogView", lambda settings, bootstrap: fake)
    return fake


def rater() -> service.Rater:
    return service.Rater(Settings(kafka=KafkaSettings(topic_prefix="t.")), "127.0.0.1:1")


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_downward_correction_is_counted_as_credited_and_does_not_raise(view: FakeView) -> None:
    ledger, producer, consumer = Ledger(), FakeProducer(), FakeConsumer()
    r = rater()
    r._transact(producer, consumer, ledger, [FakeMessage(totals(3000), 0)])  # type: ignore[arg-type]
    charged = sample("metering_rater_invoiced_amount_total", currency="USD", direction="charged")
    credited = sample("metering_rater_invoiced_amount_total", currency="USD", direction="credited")
    corrections = sample("metering_rater_invoices_published_total", kind="correction")

    # Late usage lowers the period from 3000 calls (30.00) to 1000 (10.00): a -20.00 correction.
    r._transact(producer, consumer, ledger, [FakeMessage(totals(1000, reason="late_usage"), 1)])  # type: ignore[arg-type]

    assert producer.calls[-1] == ("commit",)
    invoices = producer.produced(INVOICES_TOPIC)
    assert len(invoices) == 2 and b'"total":"-20.00"' in invoices[1][3]
    assert sample("metering_rater_invoiced_amount_total", currency="USD", direction="credited") == credited + 20.0
    assert sample("metering_rater_invoiced_amount_total", currency="USD", direction="charged") == charged
    assert sample("metering_rater_invoices_published_total", kind="correction") == corrections + 1


def test_an_upward_correction_and_an_invoice_are_charged(view: FakeView) -> None:
    ledger, producer, consumer = Ledger(), FakeProducer(), FakeConsumer()
    charged = sample("metering_rater_invoiced_amount_total", currency="USD", direction="charged")
    rater()._transact(producer, consumer, ledger, [  # type: ignore[arg-type]
        FakeMessage(totals(1000), 0), FakeMessage(totals(3000, reason="late_usage"), 1)])
    # 10.00, then a +20.00 correction
    assert sample("metering_rater_invoiced_amount_total", currency="USD", direction="charged") == charged + 30.0


@pytest.mark.parametrize("raw", [b"{not json", b'{"customer_name": "acme"}', b"[1, 2]", None],
                         ids=["bad-json", "wrong-shape", "not-an-object", "empty"])
def test_an_unreadable_record_is_dead_lettered_in_the_transaction_that_commits_its_offset(
    view: FakeView, raw: bytes | None
) -> None:
    ledger, producer, consumer = Ledger(), FakeProducer(), FakeConsumer()
    before = sample("metering_rater_dead_letters_total", reason="unreadable")
    unchanged = sample("metering_rater_periods_unchanged_total")

    rater()._transact(producer, consumer, ledger, [  # type: ignore[arg-type]
        FakeMessage(raw, 41), FakeMessage(totals(1000), 42)])

    letters = producer.produced(DEAD_LETTERS_TOPIC)
    assert len(letters) == 1
    _, _, key, value, headers = letters[0]
    assert (key, value) == (b"acme", raw)
    assert headers["reason"].decode().startswith("period_totals: not a readable PeriodTotals (")
    assert headers["original_topic"] == TOTALS_TOPIC.encode()
    assert (headers["original_partition"], headers["original_offset"]) == (b"2", b"41")
    # The next record is still rated, and everything commits in one transaction with the offsets.
    assert len(producer.produced(INVOICES_TOPIC)) == 1
    kinds = [c[0] for c in producer.calls]
    assert kinds == ["begin", "produce", "produce", "offsets", "commit"]
    assert producer.calls[3] == ("offsets", FakeConsumer.POSITIONS)
    assert sample("metering_rater_dead_letters_total", reason="unreadable") == before + 1
    assert sample("metering_rater_periods_unchanged_total") == unchanged  # not an "unchanged" outcome


def test_a_plan_unknown_after_a_catalog_sync_is_dead_lettered_and_the_rater_goes_on(view: FakeView) -> None:
    ledger, producer, consumer = Ledger(), FakeProducer(), FakeConsumer()
    before = sample("metering_rater_dead_letters_total", reason="unknown_plan")

    rater()._transact(producer, consumer, ledger, [  # type: ignore[arg-type]
        FakeMessage(totals(1000, plan="gone-plan"), 7), FakeMessage(totals(1000), 8)])

    assert view.syncs == 1
    letters = producer.produced(DEAD_LETTERS_TOPIC)
    assert len(letters) == 1
    headers = letters[0][4]
    assert headers["reason"] == b"price_plan_name: unknown plan 'gone-plan' (not in the catalog after a sync)"
    assert headers["original_offset"] == b"7"
    assert len(producer.produced(INVOICES_TOPIC)) == 1
    assert [c[0] for c in producer.calls][-2:] == ["offsets", "commit"]
    assert sample("metering_rater_dead_letters_total", reason="unknown_plan") == before + 1


def test_a_plan_unknown_while_the_catalog_cannot_sync_aborts_instead(view: FakeView) -> None:
    # The view may just be behind: that is no reason to give up on the record for good.
    view.synced = False
    producer = FakeProducer()
    with pytest.raises(UnknownPlan):
        rater()._transact(producer, FakeConsumer(), Ledger(), [FakeMessage(totals(1000, plan="new-plan"), 7)])  # type: ignore[arg-type]
    assert producer.calls == [("begin",), ("abort",)]
