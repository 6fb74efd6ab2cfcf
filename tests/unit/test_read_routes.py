"""The read routes (usage, invoices, invoice preview, entitlements) with a scripted store:
what each answers, and how each refuses (404 naming the field, 400, 503 with Retry-After)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.infra.queries import QueryError
from services.infra.store_reader import StoreUnavailable
from services.ingest.api import create_app
from services.settings import HttpSettings, Settings
from shared.catalog import parse_catalog
from shared.models.json_types import format_utc
from tests.support.catalogs import worked_example_catalog
from tests.unit.test_ingest_api import AUTH, KEY, FakeSink, FakeView

START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
USAGE = {"meter_name": "api_calls", "start_time": "2026-11-01T00:00:00Z", "end_time": "2026-11-03T00:00:00Z"}


class Store:
    """Answers each named query with its rows, or raises what it was told to."""

    def __init__(self, answers: dict[str, Any] | None = None, failure: Exception | None = None) -> None:
        self.answers = answers or {}
        self.failure = failure
        self.asked: list[tuple[str, dict[str, str]]] = []

    async def read(self, name: str, params: dict[str, str]) -> Any:
        self.asked.append((name, params))
        if self.failure is not None:
            raise self.failure
        return self.answers.get(name, [])


def _client(store: Store) -> TestClient:
    document = worked_example_catalog(START)
    document["customers"].append({"name": "idle"})  # no subscription
    catalog, problems = parse_catalog(document)
    assert problems == []
    app = create_app(Settings(http=HttpSettings(api_key=KEY)), FakeView(catalog), FakeSink(), reader=store)
    return TestClient(app, headers=AUTH)


def test_usage_is_read_per_window_with_the_meter_aggregation() -> None:
    store = Store({"usage": [{"window_start": "2026-11-01T00:00:00Z", "series": "", "value": "7"}]})
    response = _client(store).get("/customers/acme/usage", params=USAGE)
    assert response.status_code == 200
    assert response.json() == {
        "customer_name": "acme", "meter_name": "api_calls", "window": "day",
        "start_time": "2026-11-01T00:00:00Z", "end_time": "2026-11-03T00:00:00Z",
        "data": [{"window_start": "2026-11-01T00:00:00Z", "window_end": "2026-11-02T00:00:00Z",
                  "series": "", "value": "7"}],
    }
    assert store.asked == [("usage", {**USAGE, "customer_name": "acme", "window": "day", "aggregation": "SUM"})]


@pytest.mark.parametrize("path,params,field,reason", [
    ("/customers/ghost/usage", USAGE, "name", "unknown customer 'ghost'"),
    ("/customers/acme/usage", {**USAGE, "meter_name": "nope"}, "meter_name", "unknown meter 'nope'"),
    ("/invoices/inv-1", {}, "invoice_id", "no invoice 'inv-1'"),
    ("/customers/ghost/invoice_preview", {}, "name", "unknown customer 'ghost'"),
    ("/customers/idle/invoice_preview", {}, "name", "customer 'idle' has no subscription in force now"),
    ("/customers/idle/entitlements", {}, "name", "customer 'idle' has no subscription in force now"),
])
def test_what_is_not_there_is_404_naming_the_field(path: str, params: dict[str, str], field: str, reason: str) -> None:
    response = _client(Store()).get(path, params=params)
    assert response.status_code == 404
    assert response.json() == {"error": reason, "errors": [{"field": field, "reason": reason}]}


@pytest.mark.parametrize("params,field,reason", [
    ({"end_time": USAGE["start_time"]}, "end_time", "must be after start_time"),
    ({"window": "week"}, "window", "must be one of hour, day, month"),
    ({"start_time": "yesterday"}, "start_time", "is not an RFC 3339 date-time (e.g. 2026-01-01T00:00:00Z)"),
    ({"end_time": "2026-11-03T00:00:00"}, "end_time", "must carry a timezone (e.g. a trailing Z)"),
])
def test_a_bad_usage_parameter_is_400_naming_it(params: dict[str, str], field: str, reason: str) -> None:
    store = Store()
    response = _client(store).get("/customers/acme/usage", params={**USAGE, **params})
    assert response.status_code == 400
    assert response.json() == {"error": "invalid request", "errors": [{"field": field, "reason": reason}]}
    assert store.asked == []


def test_a_query_the_store_refuses_is_400_on_query() -> None:
    response = _client(Store(failure=QueryError("start_time is required"))).get("/customers/acme/usage", params=USAGE)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid request",
                               "errors": [{"field": "query", "reason": "start_time is required"}]}


@pytest.mark.parametrize("path,params", [
    ("/customers/acme/usage", USAGE),
    ("/invoices", {"customer_name": "acme"}),
    ("/invoices/inv-1", {}),
    ("/customers/acme/invoice_preview", {}),
    ("/customers/acme/entitlements", {}),
])
def test_a_store_that_cannot_answer_is_503_with_retry_after(path: str, params: dict[str, str]) -> None:
    response = _client(Store(failure=StoreUnavailable("aggregator read API answered 500"))).get(path, params=params)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json() == {"error": "store unavailable", "reason": "aggregator read API answered 500"}


def test_invoices_are_answered_as_published() -> None:
    invoice = {"invoice_id": "inv-1", "customer_name": "acme", "total": "12.00"}
    store = Store({"invoices": [{"body": json.dumps(invoice)}], "invoice": [{"body": json.dumps(invoice)}]})
    client = _client(store)
    assert client.get("/invoices", params={"customer_name": "acme"}).json() == {"invoices": [invoice]}
    assert client.get("/invoices/inv-1").json() == invoice
    assert store.asked == [("invoices", {"customer_name": "acme"}), ("invoice", {"invoice_id": "inv-1"})]


def test_the_preview_and_the_entitlements_count_only_the_open_period() -> None:
    period_start = format_utc(START)
    store = Store({"totals": [
        {"period_start": period_start, "meter_name": "api_calls", "value": "600"},
        {"period_start": period_start, "meter_name": "api_calls", "value": "400"},
        {"period_start": "2000-01-01T00:00:00Z", "meter_name": "api_calls", "value": "99999"},
    ]})
    client = _client(store)
    preview = client.get("/customers/acme/invoice_preview")
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert body["draft"] is True and body["price_plan_name"] == "growth-plan"
    assert body["period_start"] == period_start
    assert [line.get("quantity") for line in body["lines"] if line.get("meter_name") == "api_calls"] == ["1000"]
    granted = client.get("/customers/acme/entitlements")
    assert granted.status_code == 200, granted.text
    assert granted.json()["period_start"] == period_start
