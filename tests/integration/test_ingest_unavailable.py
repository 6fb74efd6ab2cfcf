"""A real producer with no broker behind it: 503 with Retry-After, never a false 202."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from services.infra.ports import free_port
from services.ingest.api import create_app
from services.ingest.publisher import Publisher
from services.settings import HttpSettings, Settings
from shared.catalog import parse_catalog
from tests.support.catalogs import worked_example_catalog
from tests.unit.test_ingest_api import AUTH, KEY, FakeView

pytestmark = pytest.mark.kafka


def test_unreachable_broker_gives_503_and_the_client_may_retry() -> None:
    catalog, problems = parse_catalog(worked_example_catalog(datetime.now(UTC) - timedelta(days=2)))
    assert problems == []
    publisher = Publisher(f"127.0.0.1:{free_port()}", delivery_timeout_ms=2000)
    try:
        client = TestClient(create_app(Settings(http=HttpSettings(api_key=KEY)), FakeView(catalog), publisher))
        measurement = {"id": "m1", "meter_name": "api_calls", "customer_name": "acme", "value": 1}
        response = client.post("/measurements/batch", json=[measurement], headers=AUTH)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert response.json()["error"] == "unavailable"
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["broker"] is False
    finally:
        publisher.close(timeout=1)
