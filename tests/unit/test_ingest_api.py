"""The ingest API's contract with a fake sink: status codes, errors by index and field."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from services.ingest.api import create_app
from services.ingest.publisher import Unavailable
from services.settings import HttpSettings, KafkaSettings, LimitSettings, Settings
from shared.catalog import Catalog, parse_catalog
from tests.support.catalogs import worked_example_catalog

KEY = "unit-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


class FakeView:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.ready = True
        self.syncs = 0

    def sync(self, timeout: float = 10.0) -> bool:
        self.syncs += 1
        return True


class FakeSink:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.records: list[tuple[str, bytes, bytes]] = []

    async def publish(self, topic: str, records: list[tuple[bytes, bytes]]) -> None:
        if self.fail:
            raise Unavailable("broker down")
        self.records += [(topic, k, v) for k, v in records]

    def queue_depth(self) -> int:
        return 0

    def broker_reachable(self, timeout: float = 2.0) -> bool:
        return not self.fail


def _client(sink: FakeSink, **limits: Any) -> tuple[TestClient, FakeView]:
    start = datetime.now(UTC) - timedelta(days=3)
    catalog, problems = parse_catalog(worked_example_catalog(start))
    assert problems == []
    view = FakeView(catalog)
    settings = Settings(
        http=HttpSettings(api_key=KEY), kafka=KafkaSettings(topic_prefix="u."), limits=LimitSettings(**limits),
    )
    return TestClient(create_app(settings, view, sink)), view


def _m(i: int, **fields: Any) -> dict[str, Any]:
    return {"id": f"m{i}", "meter_name": "api_calls", "customer_name": "acme", "value": 5, **fields}


def test_a_valid_batch_is_produced_keyed_by_customer_and_answered_202() -> None:
    sink = FakeSink()
    client, _ = _client(sink)
    response = client.post("/measurements/batch", json=[_m(1), _m(2)], headers=AUTH)
    assert response.status_code == 202
    assert response.json() == {"accepted": 2}
    assert [(t, k) for t, k, _ in sink.records] == [("u.measurements", b"acme"), ("u.measurements", b"acme")]
    assert b'"value":"5"' in sink.records[0][2] and b'"time":' in sink.records[0][2]


def test_one_invalid_measurement_fails_the_whole_batch_with_errors_by_index() -> None:
    sink = FakeSink()
    client, _ = _client(sink)
    response = client.post(
        "/measurements/batch", headers=AUTH,
        json=[_m(0), _m(1, value=1.5), _m(2, customer_name="ghost"), {"id": "m3", "value": 1}],
    )
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"index": 3, "field": "meter_name", "reason": "either meter_name or event_name is required"},
    ]
    batch = [_m(0), _m(1, value=1.5), _m(2, customer_name="ghost")]
    response = client.post("/measurements/batch", headers=AUTH, json=batch)
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"index": 1, "field": "value", "reason": "must be a whole number for INT meter 'api_calls'"},
        {"index": 2, "field": "customer_name", "reason": "unknown customer 'ghost'"},
    ]
    assert sink.records == []


def test_unknown_references_trigger_one_catalog_catch_up_before_rejecting() -> None:
    client, view = _client(FakeSink())
    client.post("/measurements/batch", headers=AUTH, json=[_m(0, customer_name="ghost")])
    assert view.syncs == 1


def test_broker_unavailable_is_503_with_retry_after() -> None:
    client, _ = _client(FakeSink(fail=True))
    response = client.post("/measurements", json=_m(1), headers=AUTH)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert client.get("/readyz").status_code == 503


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic " + KEY, KEY])
def test_every_measurement_route_needs_the_bearer_key(header: str | None) -> None:
    client, _ = _client(FakeSink())
    headers = {} if header is None else {"Authorization": header}
    response = client.post("/measurements", json=_m(1), headers=headers)
    assert response.status_code == 401
    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_size_limits_and_malformed_bodies_are_named() -> None:
    client, _ = _client(FakeSink(), batch_limit=2, max_body_bytes=2048)
    assert client.post("/measurements/batch", headers=AUTH, json=[_m(i) for i in range(3)]).status_code == 413
    big = [_m(0, labels={"k": "x" * 250}) for _ in range(10)]
    assert client.post("/measurements/batch", headers=AUTH, json=big).status_code == 413
    response = client.post("/measurements/batch", headers=AUTH, content=b"{not json")
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "body"
    response = client.post("/measurements/batch", headers=AUTH, json={"id": "x"})
    assert response.json()["errors"] == [{"field": "body", "reason": "must be a JSON array of measurements"}]


def test_a_single_measurement_reports_errors_without_an_index() -> None:
    client, _ = _client(FakeSink())
    response = client.post("/measurements", headers=AUTH, json=_m(1, time="2020-01-01T00:00:00Z"))
    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": "time", "reason": "is older than the 35-day dedup window"}]


class SlowBrokerSink(FakeSink):
    """A broker probe that blocks, as librdkafka's metadata request does when no broker
    answers (up to its 2 s timeout), until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def broker_reachable(self, timeout: float = 2.0) -> bool:
        self.release.wait(5)
        return True


def test_a_slow_broker_probe_does_not_hold_up_measurements() -> None:
    sink = SlowBrokerSink()
    start = datetime.now(UTC) - timedelta(days=3)
    catalog, _ = parse_catalog(worked_example_catalog(start))
    app = create_app(Settings(http=HttpSettings(api_key=KEY), kafka=KafkaSettings(topic_prefix="u.")),
                     FakeView(catalog), sink)

    async def scenario() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest") as client:
            ready = asyncio.create_task(client.get("/readyz"))
            await asyncio.sleep(0.1)  # the probe has started and is waiting on the broker
            response = await client.post("/measurements", json=_m(1), headers=AUTH)
            assert response.status_code == 202
            assert not ready.done(), "the measurement was held up until the broker probe had finished"
            sink.release.set()
            answer = await ready
            assert answer.status_code == 200 and answer.json()["checks"]["broker"] is True

    asyncio.run(scenario())
