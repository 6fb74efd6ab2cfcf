"""The catalog API on the real broker: what one ingest instance accepts over HTTP, every
other service's live view sees without a restart; a DELETE travels as a tombstone; and
the compacted topic alone rebuilds the same catalog in a view started afterwards."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from services.demo import GROWTH_PLAN
from services.infra import topics
from services.infra.catalog_view import CatalogView, entity_key
from services.ingest.api import create_app
from services.ingest.catalog_access import KafkaCatalogWriter
from services.settings import HttpSettings, KafkaSettings, Settings
from shared.catalog import Catalog
from tests.unit.test_ingest_api import FakeSink

pytestmark = pytest.mark.kafka

CUSTOMER = "O'Brien & Sons / 100% \"ünïcødé\" \\ ; DROP TABLE customers; --"


@pytest.fixture
def settings(kafka_bootstrap: str, unique: str) -> Settings:
    settings = Settings(
        kafka=KafkaSettings(
            bootstrap_servers=kafka_bootstrap, topic_prefix=f"t{unique}.", consumer_group_prefix=f"t{unique}",
            partitions=1,
        ),
        http=HttpSettings(api_key=f"key-{unique}"),
    )
    topics.ensure_topics(settings, kafka_bootstrap)
    return settings


def _view(settings: Settings, bootstrap: str, name: str) -> CatalogView:
    """A view as another service holds it: its own consumer, its own group names."""
    own = settings.updated(kafka={"consumer_group_prefix": f"{settings.kafka.consumer_group_prefix}-{name}"})
    return CatalogView(own, bootstrap).start()


@pytest.fixture
def ingest(settings: Settings, kafka_bootstrap: str) -> Iterator[tuple[TestClient, CatalogView]]:
    view = CatalogView(settings, kafka_bootstrap).start()
    writer = KafkaCatalogWriter(settings, kafka_bootstrap)
    # Measurements are not the subject here: a recording sink stands in for the producer.
    app = create_app(settings, view, FakeSink(), writer=writer)
    assert settings.http.api_key is not None
    headers = {"Authorization": f"Bearer {settings.http.api_key.get_secret_value()}"}
    try:
        with TestClient(app, headers=headers) as client:
            yield client, view
    finally:
        view.stop()


def _state(catalog: Catalog) -> dict[str, dict[str, object]]:
    return {
        "customers": dict(catalog.customers), "meters": dict(catalog.meters),
        "price_plans": dict(catalog.price_plans), "subscriptions": dict(catalog.subscriptions),
    }


def _records(settings: Settings, bootstrap: str) -> list[tuple[bytes, bytes | None]]:
    """Every record of the catalog topic, in order, as (key, value)."""
    topic = topics.name(settings, topics.CATALOG)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{settings.kafka.consumer_group_prefix}-probe",
                         "enable.auto.commit": False})
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        found: list[tuple[bytes, bytes | None]] = []
        deadline = time.monotonic() + 30
        while len(found) < high and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                found.append((message.key() or b"", message.value()))
        return found
    finally:
        consumer.close()


def test_catalog_written_over_http_reaches_other_views_and_survives_them(
    settings: Settings, kafka_bootstrap: str, ingest: tuple[TestClient, CatalogView]
) -> None:
    client, own_view = ingest
    other = _view(settings, kafka_bootstrap, "rater")  # already running before the writes
    try:
        start = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
        subscription = {"customer_name": CUSTOMER, "price_plan_name": "growth-plan",
                        "start_time": start.isoformat().replace("+00:00", "Z")}
        key = f"{CUSTOMER}@{start.isoformat()}"

        assert client.post("/meters", json={"name": "api_calls"}).status_code == 201
        assert client.post("/price_plans", json=GROWTH_PLAN).status_code == 201
        assert client.post("/customers", json={"name": CUSTOMER}).status_code == 201
        created = client.post("/subscriptions", json=subscription)
        assert created.status_code == 201, created.text
        assert created.headers["Location"] == f"/subscriptions/{quote(key, safe='')}"

        # Read-your-writes on the instance that took the write: the very next request
        # sees the customer, a measurement for it included.
        assert client.get(f"/customers/{quote(CUSTOMER, safe='')}").json() == {"name": CUSTOMER}
        assert client.get(created.headers["Location"]).json()["customer_name"] == CUSTOMER
        measured = client.post("/measurements", json={"id": "m1", "meter_name": "api_calls",
                                                      "customer_name": CUSTOMER, "value": 3})
        assert measured.status_code == 202, measured.text

        # Another service's view, never restarted, sees all of it once it has synced.
        assert other.sync(30)
        assert set(other.catalog.meters) == {"api_calls"}
        assert set(other.catalog.price_plans) == {"growth-plan"}
        assert set(other.catalog.customers) == {CUSTOMER}
        assert list(other.catalog.subscriptions) == [key]
        assert _state(other.catalog) == _state(own_view.catalog)

        # A replacement propagates too.
        assert client.put(f"/customers/{quote(CUSTOMER, safe='')}", json={"display_name": "O'B"}).status_code == 200
        assert other.sync(30)
        assert other.catalog.customers[CUSTOMER].display_name == "O'B"

        # A DELETE is a tombstone on the compacted topic, and the other view drops it.
        assert client.delete(created.headers["Location"]).status_code == 204
        assert other.sync(30)
        assert other.catalog.subscriptions == {}
        assert other.catalog.subscription_at(CUSTOMER, datetime.now(UTC)) is None
        wanted = entity_key("subscriptions", key)
        last_for_key = [value for k, value in _records(settings, kafka_bootstrap) if k == wanted]
        assert len(last_for_key) == 2 and last_for_key[0] is not None and last_for_key[-1] is None
    finally:
        other.stop()

    # The catalog lives in the topic, not in any process: a view started now rebuilds it.
    expected = _state(own_view.catalog)
    assert set(expected["customers"]) == {CUSTOMER} and expected["subscriptions"] == {}
    fresh = _view(settings, kafka_bootstrap, "restarted")
    try:
        assert _state(fresh.catalog) == expected
    finally:
        fresh.stop()


def test_refused_writes_leave_the_topic_untouched(
    settings: Settings, kafka_bootstrap: str, ingest: tuple[TestClient, CatalogView]
) -> None:
    client, _ = ingest
    assert client.post("/meters", json={"name": "api_calls"}).status_code == 201
    assert client.post("/price_plans", json=GROWTH_PLAN).status_code == 201
    before = _records(settings, kafka_bootstrap)
    assert client.post("/meters", json={"name": "api_calls"}).status_code == 409
    assert client.delete("/meters/api_calls").status_code == 409
    assert client.post("/price_plans", json={**GROWTH_PLAN, "name": "x", "base_price": "49"}).status_code == 400
    assert client.post("/subscriptions", json={"customer_name": "ghost", "price_plan_name": "growth-plan",
                                               "start_time": "2026-01-01T00:00:00Z"}).status_code == 400
    assert _records(settings, kafka_bootstrap) == before


def _produce_raw(settings: Settings, bootstrap: str, records: list[tuple[bytes | None, bytes | None]]) -> None:
    """Records as a writer that skips validation (or a newer version) would write them."""
    producer = Producer({"bootstrap.servers": bootstrap})
    for key, value in records:
        producer.produce(topics.name(settings, topics.CATALOG), key=key, value=value)
    assert producer.flush(30) == 0


def _skipped(part: str) -> float:
    return REGISTRY.get_sample_value("metering_catalog_records_skipped_total", {"part": part}) or 0.0


def test_unreadable_catalog_records_are_skipped_logged_and_counted(
    settings: Settings, kafka_bootstrap: str, ingest: tuple[TestClient, CatalogView], caplog: pytest.LogCaptureFixture
) -> None:
    client, view = ingest
    before = {part: _skipped(part) for part in ("key", "kind", "value")}
    _produce_raw(settings, kafka_bootstrap, [
        (b"customers/\xff\xfe", b'{"name": "x"}'),  # a key that is not UTF-8
        (b"meters/\xc3", None),  # a tombstone with one
        (b"customers/bad", b"{not json"),  # a value that is not JSON
        (b"customers/typed", b'{"name": 7}'),  # JSON, but no customer
        (b"widgets/w", b"{}"),  # a kind this version does not know
        (b"customers/decoy", b'{"name": "victim"}'),  # an entity under another's key
    ])
    # A write after them answers only once this view applied it: the thread went on.
    assert client.post("/customers", json={"name": "after"}).status_code == 201
    assert set(view.catalog.customers) == {"after"}
    assert view.ready and client.get("/readyz").status_code == 200
    assert {part: _skipped(part) - before[part] for part in before} == {"key": 2, "kind": 1, "value": 3}
    assert sum("skipped" in record.getMessage() for record in caplog.records) == 6


def test_a_view_whose_thread_stopped_is_not_ready(
    settings: Settings, kafka_bootstrap: str, ingest: tuple[TestClient, CatalogView]
) -> None:
    client, view = ingest
    assert client.get("/readyz").status_code == 200

    def broken(entity: object) -> None:
        raise RuntimeError("a bug while applying an entity")

    view.catalog.put = broken  # type: ignore[method-assign]
    _produce_raw(settings, kafka_bootstrap, [(b"customers/c", b'{"name": "c"}')])
    deadline = time.monotonic() + 30
    while view.ready and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not view.ready
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["checks"]["catalog"] is False
    started = time.monotonic()
    assert not view.sync(10)  # a stopped view never catches up, and says so at once
    assert time.monotonic() - started < 5
