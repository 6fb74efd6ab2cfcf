"""The catalog CRUD API (services/ingest/catalog_routes.py) with a fake view and writer:
every rule with the exact error it answers, status codes, auth, hostile names in paths."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.infra.catalog_view import Entity
from services.ingest.api import create_app
from services.ingest.catalog_routes import catalog_router
from services.settings import HttpSettings, KafkaSettings, LimitSettings, Settings
from shared.catalog import Catalog, parse_catalog
from tests.support.catalogs import worked_example_catalog
from tests.unit.seed_schemas import CUSTOMER_SEED, PRICE_PLAN_SEED, load_seed_schema, requires_seeds
from tests.unit.test_ingest_api import FakeSink

KEY = "unit-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
START = datetime(2026, 1, 1, tzinfo=UTC)
ACME_SUB = "acme@2026-01-01T00:00:00+00:00"


class FakeView:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.ready = True
        self.syncs = 0
        self.in_sync = True

    def sync(self, timeout: float = 10.0) -> bool:
        self.syncs += 1
        return self.in_sync


class FakeWriter:
    """Applies each change to the view's catalog, as the view's thread would."""

    def __init__(self, view: FakeView) -> None:
        self.view = view
        self.changes: list[tuple[str, str, Entity | None]] = []
        self.fail = False
        self.apply = True

    def write(self, changes: list[tuple[str, str, Entity | None]]) -> None:
        if self.fail:
            raise RuntimeError("catalog write failed: broker down")
        self.changes += changes
        if not self.apply:
            return
        for kind, key, entity in changes:
            if entity is None:
                self.view.catalog.delete(kind, key)
            else:
                self.view.catalog.put(entity)


def _catalog() -> Catalog:
    document = worked_example_catalog(START)
    document["price_plans"][0]["add_ons"] = [
        {"feature": {"name": "sso"}, "price": 10, "price_scheme_type": "FLAT", "single_use": False,
         "quantity_enabled": True}
    ]
    catalog, problems = parse_catalog(document)
    assert problems == []
    return catalog


@pytest.fixture
def view() -> FakeView:
    return FakeView(_catalog())


@pytest.fixture
def writer(view: FakeView) -> FakeWriter:
    return FakeWriter(view)


@pytest.fixture
def client(view: FakeView, writer: FakeWriter) -> TestClient:
    settings = Settings(
        http=HttpSettings(api_key=KEY), kafka=KafkaSettings(topic_prefix="u."),
        limits=LimitSettings(max_body_bytes=64 * 1024),
    )
    return TestClient(create_app(settings, view, FakeSink(), writer=writer), headers=AUTH)


def q(name: str) -> str:
    """A path segment for any name: every reserved character percent-encoded."""
    return quote(name, safe="")


def errors(response: Any) -> list[dict[str, str]]:
    body = response.json()
    assert set(body) == {"error", "errors"}, body
    result: list[dict[str, str]] = body["errors"]
    return result


def plan(name: str = "basic", meter: str = "api_calls", **extra: Any) -> dict[str, Any]:
    return {
        "name": name, "period": "monthly",
        "metered_components": [{"meter_name": meter, "meter_display_name": meter,
                                "price_scheme": {"scheme_type": "FLAT", "prices": [{"price": 1}]}}],
        **extra,
    }


def sub(customer: str = "acme", start: str = "2026-06-01T00:00:00Z", **extra: Any) -> dict[str, Any]:
    return {"customer_name": customer, "price_plan_name": "growth-plan", "start_time": start, **extra}


# ---- wiring and auth --------------------------------------------------------------

ROUTES = [
    ("GET", "/customers"), ("POST", "/customers"), ("GET", "/customers/acme"), ("PUT", "/customers/acme"),
    ("DELETE", "/customers/acme"), ("GET", "/customers/acme/subscriptions"),
    ("GET", "/meters"), ("POST", "/meters"), ("GET", "/meters/api_calls"), ("PUT", "/meters/api_calls"),
    ("DELETE", "/meters/api_calls"),
    ("GET", "/price_plans"), ("POST", "/price_plans"), ("GET", "/price_plans/growth-plan"),
    ("PUT", "/price_plans/growth-plan"), ("DELETE", "/price_plans/growth-plan"),
    ("GET", "/subscriptions"), ("POST", "/subscriptions"), ("GET", f"/subscriptions/{q(ACME_SUB)}"),
    ("PUT", f"/subscriptions/{q(ACME_SUB)}"), ("DELETE", f"/subscriptions/{q(ACME_SUB)}"),
]


@pytest.mark.parametrize("method,path", ROUTES)
@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic " + KEY])
def test_every_catalog_route_needs_the_bearer_key(
    client: TestClient, writer: FakeWriter, method: str, path: str, header: str | None
) -> None:
    headers = {"Authorization": header or ""}
    response = client.request(method, path, headers=headers, json={"name": "x"})
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert writer.changes == []


def test_without_a_writer_there_are_no_catalog_routes(view: FakeView) -> None:
    app = create_app(Settings(http=HttpSettings(api_key=KEY), kafka=KafkaSettings(topic_prefix="u.")), view, FakeSink())
    client = TestClient(app, headers=AUTH)
    assert client.get("/customers").status_code == 404
    assert client.post("/measurements", json={"id": "1", "meter_name": "api_calls", "value": 1}).status_code == 400


# ---- the life of an entity ---------------------------------------------------------


def test_a_customer_is_created_read_listed_replaced_and_deleted(
    client: TestClient, view: FakeView, writer: FakeWriter,
) -> None:
    created = client.post("/customers", json={"name": "globex", "display_name": "Globex", "custom": {"x": 1}})
    assert created.status_code == 201
    assert created.json() == {"name": "globex", "display_name": "Globex", "custom": {"x": 1}}
    assert created.headers["Location"] == "/customers/globex"
    assert [(k, key) for k, key, _ in writer.changes] == [("customers", "globex")]

    assert client.get("/customers/globex").json() == created.json()
    assert [c["name"] for c in client.get("/customers").json()] == ["acme", "globex"]

    replaced = client.put("/customers/globex", json={"name": "globex", "display_name": "Globex Corp"})
    assert replaced.status_code == 200
    assert replaced.json() == {"name": "globex", "display_name": "Globex Corp"}
    assert client.get("/customers/globex").json() == {"name": "globex", "display_name": "Globex Corp"}

    deleted = client.delete("/customers/globex")
    assert deleted.status_code == 204 and deleted.content == b""
    assert writer.changes[-1] == ("customers", "globex", None)
    missing = client.get("/customers/globex")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": "not found", "errors": [{"field": "name", "reason": "no customer named 'globex'"}],
    }


def test_a_write_syncs_the_view_before_judging_and_answers_once_the_view_has_it(
    client: TestClient, view: FakeView
) -> None:
    before = view.syncs
    assert client.post("/meters", json={"name": "storage"}).status_code == 201
    assert view.syncs >= before + 2  # once before judging, at least once after writing
    assert "storage" in view.catalog.meters


def test_meters_and_plans_have_the_same_lifecycle(client: TestClient) -> None:
    meter = {
        "name": "storage", "meter_type": "GAUGE", "data_type": "FLOAT", "aggregation": "MAX", "is_incremental": False,
    }
    response = client.post("/meters", json=meter)
    assert response.status_code == 201
    assert response.json() == {**meter, "reporting_method": "periodic", "expected_labels": [], "primary_labels": [],
                               "event_label_filter": {}}
    assert client.post("/price_plans", json=plan("storage-plan", "storage", base_price=9.5)).status_code == 201
    assert client.get("/price_plans/storage-plan").json()["base_price"] == 9.5
    assert [p["name"] for p in client.get("/price_plans").json()] == ["growth-plan", "storage-plan"]
    # A plan that still prices the meter protects it; once gone, the meter may go.
    assert client.delete("/meters/storage").status_code == 409
    assert client.delete("/price_plans/storage-plan").status_code == 204
    assert client.delete("/meters/storage").status_code == 204
    assert client.get("/meters/storage").status_code == 404


def test_a_subscription_is_created_read_listed_replaced_and_deleted(client: TestClient) -> None:
    # acme's subscription is open-ended: end it, so the next one fits after it.
    ended = client.put(f"/subscriptions/{q(ACME_SUB)}", json={"price_plan_name": "growth-plan",
                                                              "end_time": "2026-06-01T00:00:00Z"})
    assert ended.status_code == 200
    assert ended.json() == {
        "customer_name": "acme", "price_plan_name": "growth-plan", "start_time": "2026-01-01T00:00:00Z",
        "end_time": "2026-06-01T00:00:00Z", "add_ons": [],
    }
    created = client.post("/subscriptions", json=sub(add_ons=[{"feature": "sso", "quantity": 2}]))
    assert created.status_code == 201
    key = "acme@2026-06-01T00:00:00+00:00"
    assert created.json() == {"customer_name": "acme", "price_plan_name": "growth-plan",
                              "start_time": "2026-06-01T00:00:00Z", "add_ons": [{"feature": "sso", "quantity": 2}]}
    assert created.headers["Location"] == f"/subscriptions/{q(key)}"
    assert client.get(created.headers["Location"]).json() == created.json()
    # Any RFC 3339 spelling of the start names the same subscription.
    assert client.get(f"/subscriptions/{q('acme@2026-06-01T02:00:00+02:00')}").json() == created.json()
    assert client.get("/subscriptions/acme@2026-06-01T00:00:00Z").json() == created.json()

    listed = client.get("/subscriptions", params={"customer_name": "acme"}).json()
    assert [s["start_time"] for s in listed] == ["2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z"]
    assert client.get("/customers/acme/subscriptions").json() == listed
    assert client.get("/subscriptions").json() == listed
    assert client.get("/subscriptions", params={"customer_name": "nobody"}).json() == []

    # Re-opening the first one would overlap the second.
    overlap = client.put(f"/subscriptions/{q(ACME_SUB)}", json={"price_plan_name": "growth-plan"})
    assert overlap.status_code == 400
    assert errors(overlap) == [
        {"field": "start_time", "reason": "overlaps the subscription starting 2026-06-01T00:00:00+00:00"},
    ]

    assert client.delete(f"/subscriptions/{q(key)}").status_code == 204
    assert client.get(f"/subscriptions/{q(key)}").status_code == 404


# ---- uniqueness and the shape of a body ------------------------------------------


@pytest.mark.parametrize("path,body,label", [
    ("/customers", {"name": "acme"}, "customer"),
    ("/meters", {"name": "api_calls"}, "meter"),
    ("/price_plans", plan("growth-plan"), "price plan"),
])
def test_creating_an_existing_name_is_a_conflict_on_name(
    client: TestClient, writer: FakeWriter, path: str, body: dict[str, Any], label: str
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 409
    assert response.json() == {"error": "conflict", "errors": [
        {"field": "name", "reason": f"a {label} named {body['name']!r} already exists"}]}
    assert writer.changes == []


def test_creating_an_existing_subscription_is_a_conflict_on_start_time(client: TestClient) -> None:
    response = client.post("/subscriptions", json=sub(start="2026-01-01T01:00:00+01:00"))
    assert response.status_code == 409
    reason = "customer 'acme' already has a subscription starting 2026-01-01T00:00:00+00:00"
    assert response.json() == {"error": "conflict", "errors": [{"field": "start_time", "reason": reason}]}


@pytest.mark.parametrize("path,body,expected", [
    ("/customers", {"display_name": "no name"}, [{"field": "name", "reason": "Field required"}]),
    ("/customers", {"name": 7}, [{"field": "name", "reason": "Input should be a valid string"}]),
    ("/customers", {"name": "x", "display_name": None}, [{"field": "display_name", "reason": "must not be null"}]),
    ("/customers", {"name": "x", "contact_info": {"email": "not an email"}},
     [{"field": "contact_info.email", "reason": "is not a valid email"}]),
    ("/customers", {"name": "x", "created_at": "2026-01-01"},
     [{"field": "created_at", "reason": "is not a valid RFC 3339 date-time (e.g. 2026-01-01T00:00:00Z)"}]),
    # The seed says number: a numeric string is not one, nor is a boolean.
    ("/price_plans", plan(base_price="49.00"), [{"field": "base_price", "reason": "must be a JSON number"}]),
    ("/price_plans", plan(base_price=True), [{"field": "base_price", "reason": "must be a JSON number"}]),
    ("/price_plans", plan(base_price=-1),
     [{"field": "base_price", "reason": "Input should be greater than or equal to 0"}]),
    ("/price_plans", plan(period="weekly"),
     [{"field": "period", "reason": "Input should be 'monthly', 'quarterly' or 'annual'"}]),
    ("/price_plans", {"name": "p", "period": "monthly"}, [{"field": "metered_components", "reason": "Field required"}]),
    ("/meters", {"name": "m", "data_type": "STRING"},
     [{"field": "data_type", "reason": "STRING is allowed only with aggregation UNIQUE_COUNT"}]),
    ("/meters", {"name": "m", "colour": "blue"}, [{"field": "colour", "reason": "is not a known field"}]),
    ("/meters", {"name": " padded"}, [{"field": "name", "reason": (
        "String should match pattern '^[^\\x00-\\x20\\x7f](?:[^\\x00-\\x1f\\x7f]*[^\\x00-\\x20\\x7f])?$'"
    )}]),
    ("/subscriptions", sub(end_time="2025-01-01T00:00:00Z"),
     [{"field": "end_time", "reason": "must be after start_time"}]),
    ("/subscriptions", sub(add_ons=[{"feature": "sso", "quantity": 0}]),
     [{"field": "add_ons[0].quantity", "reason": "Input should be greater than or equal to 1"}]),
    ("/subscriptions", sub(start_time=1767225600),
     [{"field": "start_time", "reason": "must be an RFC 3339 date-time string"}]),
    ("/customers", ["acme"], [{"field": "body", "reason": "must be a JSON object"}]),
])
def test_a_body_of_the_wrong_shape_is_400_with_each_field_and_reason(
    client: TestClient, writer: FakeWriter, path: str, body: Any, expected: list[dict[str, str]]
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith("invalid ")
    assert errors(response) == expected
    assert writer.changes == []


@pytest.mark.parametrize("content", [
    b"", b"{not json", b'{"name": NaN}', b'{"name": "x", "n": Infinity}', b"\xff", b'{"name": "\\ud800"}',
])
def test_a_body_that_is_not_json_is_400_on_body(client: TestClient, content: bytes) -> None:
    response = client.post("/customers", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid body"
    [error] = errors(response)
    assert error["field"] == "body" and error["reason"].startswith("body is not valid JSON")


def test_a_body_over_the_limit_is_413(client: TestClient) -> None:
    response = client.post("/customers", json={"name": "x", "display_name": "y" * 70_000})
    assert response.status_code == 413
    assert response.json() == {
        "error": "body too large", "errors": [{"field": "body", "reason": "at most 65536 bytes"}],
    }


# ---- catalog rules (shared.catalog.entity_problems) --------------------------------


@pytest.mark.parametrize("path,body,expected", [
    ("/customers", {"name": "  "}, [{"field": "name", "reason": "must not be blank"}]),
    ("/customers", {"name": "tab\there"}, [{"field": "name", "reason": "must not contain control characters"}]),
    ("/customers", {"name": "thief", "measurement_mappings": [{"label": "tenant", "value": "t-1"}]},
     [{"field": "measurement_mappings", "reason": "(tenant=t-1) is already claimed by customer 'owner'"}]),
    ("/customers", {"name": "x", "measurement_mappings": [{"label": "tenant"}]},
     [{"field": "measurement_mappings[0].value", "reason": "must be a non-empty string"}]),
    ("/price_plans", plan(meter="ghost"),
     [{"field": "metered_components[0].meter_name", "reason": "names no known meter"}]),
    ("/price_plans", plan(name=""), [{"field": "name", "reason": "must not be blank"}]),
    ("/price_plans", plan(base_price_frequency="weekly"),
     [{"field": "base_price_frequency", "reason": "must be one of monthly, quarterly, annual"}]),
    ("/price_plans", {**plan(), "metered_components": [{
        "meter_name": "api_calls", "meter_display_name": "calls",
        "price_scheme": {"scheme_type": "TIERED", "prices": [{"price": 1, "cap": 10}, {"price": 0.5, "cap": 5}]}}]},
     [{"field": "metered_components[0].price_scheme.prices[1].cap", "reason": "caps must be positive and ascending"},
      {"field": "metered_components[0].price_scheme.prices[1].cap", "reason": "the last tier must be uncapped"}]),
    ("/price_plans", {**plan(), "metered_components": [{
        "meter_name": "api_calls", "meter_display_name": "calls", "price_scheme": {"prices": [{"price": 1}]}}]},
     [{"field": "metered_components[0].price_scheme.scheme_type", "reason": "is required to rate the component"}]),
    ("/subscriptions", sub(customer="nobody", price_plan_name="nothing"),
     [{"field": "customer_name", "reason": "names no known customer"},
      {"field": "price_plan_name", "reason": "names no known price plan"}]),
    ("/subscriptions", sub(start="2025-12-01T00:00:00Z"),
     [{"field": "start_time", "reason": "overlaps the subscription starting 2026-01-01T00:00:00+00:00"}]),
    ("/subscriptions", sub(start="2025-12-01T00:00:00Z", end_time="2026-01-01T00:00:00Z",
                           add_ons=[{"feature": "audit"}]),
     [{"field": "add_ons[0].feature", "reason": "is not an add-on of the plan"}]),
])
def test_a_body_that_breaks_a_catalog_rule_is_400_with_the_rule(
    client: TestClient, writer: FakeWriter, path: str, body: dict[str, Any], expected: list[dict[str, str]]
) -> None:
    assert client.post("/customers", json={"name": "owner", "measurement_mappings": [
        {"label": "tenant", "value": "t-1"}]}).status_code == 201
    writer.changes.clear()
    response = client.post(path, json=body)
    assert response.status_code == 400, response.text
    assert errors(response) == expected
    assert writer.changes == []


def test_back_to_back_subscriptions_do_not_overlap(client: TestClient) -> None:
    before = sub(start="2025-12-01T00:00:00Z", end_time="2026-01-01T00:00:00Z")
    assert client.post("/subscriptions", json=before).status_code == 201


# ---- deleting what others refer to --------------------------------------------------


def test_deleting_a_meter_a_plan_prices_is_a_conflict_naming_the_plan(client: TestClient, writer: FakeWriter) -> None:
    response = client.delete("/meters/api_calls")
    assert response.status_code == 409
    assert response.json() == {"error": "conflict", "errors": [
        {"field": "name", "reason": "is used by price plan 'growth-plan'; delete or change it first"}]}
    assert client.post("/price_plans", json=plan("basic")).status_code == 201
    assert errors(client.delete("/meters/api_calls")) == [
        {"field": "name", "reason": "is used by price plans 'basic', 'growth-plan'; delete or change them first"}]
    assert [c for c in writer.changes if c[2] is None] == []


def test_a_conflict_names_at_most_ten_dependents(client: TestClient) -> None:
    for i in range(11):
        assert client.post("/price_plans", json=plan(f"p{i:02d}")).status_code == 201
    listed = ", ".join(repr(p) for p in ["growth-plan"] + [f"p{i:02d}" for i in range(9)])
    assert errors(client.delete("/meters/api_calls")) == [
        {"field": "name", "reason": f"is used by price plans {listed} and 2 more; delete or change them first"}]


def test_deleting_a_plan_a_subscription_uses_is_a_conflict_naming_the_subscription(client: TestClient) -> None:
    response = client.delete("/price_plans/growth-plan")
    assert response.status_code == 409
    assert errors(response) == [
        {"field": "name", "reason": f"is used by subscription {ACME_SUB!r}; delete or change it first"}]


def test_deleting_a_customer_with_subscriptions_is_a_conflict_until_they_are_gone(client: TestClient) -> None:
    response = client.delete("/customers/acme")
    assert response.status_code == 409
    assert errors(response) == [
        {"field": "name", "reason": f"is used by subscription {ACME_SUB!r}; delete it first"}]
    assert client.delete(f"/subscriptions/{q(ACME_SUB)}").status_code == 204
    assert client.delete("/customers/acme").status_code == 204
    assert client.get("/customers").json() == []


@pytest.mark.parametrize("path,field,reason", [
    ("/customers/ghost", "name", "no customer named 'ghost'"),
    ("/meters/ghost", "name", "no meter named 'ghost'"),
    ("/price_plans/ghost", "name", "no price plan named 'ghost'"),
    (f"/subscriptions/{q('acme@2030-01-01T00:00:00Z')}", "subscription_id",
     "no subscription 'acme@2030-01-01T00:00:00+00:00'"),
    ("/subscriptions/acme", "subscription_id",
     "is not of the form <customer_name>@<start_time> (RFC 3339), percent-encoded"),
    ("/subscriptions/acme@yesterday", "subscription_id",
     "is not of the form <customer_name>@<start_time> (RFC 3339), percent-encoded"),
])
@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_an_unknown_entity_is_404_naming_it(
    client: TestClient, method: str, path: str, field: str, reason: str,
) -> None:
    response = client.request(method, path)
    assert response.status_code == 404
    assert response.json() == {"error": "not found", "errors": [{"field": field, "reason": reason}]}


def test_reading_an_unknown_name_catches_the_view_up_once(client: TestClient, view: FakeView) -> None:
    before = view.syncs
    assert client.get("/customers/ghost").status_code == 404
    assert view.syncs == before + 1
    assert client.get("/customers/ghost/subscriptions").status_code == 404


# ---- PUT ----------------------------------------------------------------------------


def test_put_with_another_name_in_the_body_is_400_and_writes_nothing(client: TestClient, writer: FakeWriter) -> None:
    response = client.put("/customers/acme", json={"name": "globex"})
    assert response.status_code == 400
    assert response.json() == {"error": "invalid customer", "errors": [
        {"field": "name", "reason": "must equal the name in the path ('acme') or be absent"}]}
    response = client.put("/meters/api_calls", json={"name": None})
    assert errors(response) == [
        {"field": "name", "reason": "must equal the name in the path ('api_calls') or be absent"},
    ]
    assert writer.changes == []


def test_put_without_a_name_takes_the_path_name(client: TestClient) -> None:
    response = client.put("/meters/api_calls", json={"aggregation": "COUNT"})
    assert response.status_code == 200
    assert response.json()["name"] == "api_calls" and response.json()["aggregation"] == "COUNT"


def test_put_replaces_the_whole_entity(client: TestClient) -> None:
    assert client.put("/customers/acme", json={"display_name": "Acme"}).status_code == 200
    assert client.put("/customers/acme", json={"tags": [{"name": "vip"}]}).status_code == 200
    assert client.get("/customers/acme").json() == {"name": "acme", "tags": [{"name": "vip"}]}


def test_put_does_not_create(client: TestClient, writer: FakeWriter) -> None:
    response = client.put("/customers/globex", json={})
    assert response.status_code == 404
    assert errors(response) == [{"field": "name", "reason": "no customer named 'globex'"}]
    response = client.put(f"/subscriptions/{q('acme@2030-01-01T00:00:00Z')}", json={"price_plan_name": "growth-plan"})
    assert response.status_code == 404
    assert writer.changes == []


def test_put_is_judged_by_the_same_rules(client: TestClient) -> None:
    response = client.put("/price_plans/growth-plan", json=plan("growth-plan", meter="ghost"))
    assert response.status_code == 400
    assert errors(response) == [{"field": "metered_components[0].meter_name", "reason": "names no known meter"}]
    response = client.put(f"/subscriptions/{q(ACME_SUB)}", json={"price_plan_name": "nothing"})
    assert errors(response) == [{"field": "price_plan_name", "reason": "names no known price plan"}]


def test_put_of_a_plan_may_not_drop_an_add_on_a_subscription_takes(client: TestClient) -> None:
    assert client.put(f"/subscriptions/{q(ACME_SUB)}", json={
        "price_plan_name": "growth-plan", "add_ons": [{"feature": "sso"}]}).status_code == 200
    growth = client.get("/price_plans/growth-plan").json()
    response = client.put("/price_plans/growth-plan", json={**growth, "add_ons": []})
    assert response.status_code == 409
    assert errors(response) == [{"field": "add_ons", "reason":
                                 f"subscription {ACME_SUB!r} takes add-on 'sso', which the plan would no longer offer"}]
    assert client.put("/price_plans/growth-plan", json={**growth, "base_price": 59}).status_code == 200


def test_put_of_a_subscription_may_not_move_it(client: TestClient) -> None:
    response = client.put(f"/subscriptions/{q(ACME_SUB)}", json=sub(start="2026-02-01T00:00:00Z"))
    assert response.status_code == 400
    assert response.json() == {"error": "invalid subscription", "errors": [
        {"field": "start_time", "reason": "must equal the start in the path (2026-01-01T00:00:00+00:00) or be absent"}]}
    response = client.put(f"/subscriptions/{q(ACME_SUB)}", json=sub(customer="globex", start="2026-01-01T00:00:00Z"))
    assert errors(response) == [
        {"field": "customer_name", "reason": "must equal the customer in the path ('acme') or be absent"},
    ]
    # The same instant in another spelling is the same subscription.
    assert client.put(f"/subscriptions/{q(ACME_SUB)}", json=sub(start="2026-01-01T01:00:00+01:00")).status_code == 200


# ---- failures of the broker and the view ---------------------------------------------


def test_a_write_the_broker_does_not_acknowledge_is_503_with_retry_after(
    client: TestClient, view: FakeView, writer: FakeWriter,
) -> None:
    writer.fail = True
    response = client.post("/customers", json={"name": "globex"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json() == {"error": "unavailable",
                               "reason": "the catalog change was not acknowledged by the broker; retry"}
    assert "globex" not in view.catalog.customers


def test_a_view_that_cannot_catch_up_is_503_before_anything_is_written(
    client: TestClient, view: FakeView, writer: FakeWriter,
) -> None:
    view.in_sync = False
    response = client.delete("/customers/acme")
    assert response.status_code == 503
    assert response.json() == {"error": "unavailable", "reason": "the catalog could not be read up to date; retry"}
    assert writer.changes == []


def test_a_write_the_view_does_not_show_in_time_is_504(view: FakeView, writer: FakeWriter) -> None:
    writer.apply = False
    app = FastAPI()
    app.include_router(catalog_router(Settings(), view, writer, visible_timeout=0.2))
    response = TestClient(app).post("/customers", json={"name": "globex"})
    assert response.status_code == 504
    assert response.json()["error"] == "not yet visible"
    assert len(writer.changes) == 1


# ---- hostile names -------------------------------------------------------------------

HOSTILE = [
    "O'Brien \"Ltd\"",
    "back\\slash\\",
    "'; DROP TABLE customers; --",
    "Robert'); DELETE FROM subscriptions WHERE ('1'='1",
    "Ünïcødé 客户 🚀",
    "a/b",
    "/leading/and/trailing/",
    "100%",
    "%2F",
    "a%2Fb%25",
    "x/subscriptions",
    "x/usage",
    "name with spaces",
    "?query=1&b=2#fragment",
    "+plus+",
    "semi;colon,comma=eq",
    "at@sign@2026-01-01T00:00:00Z",
    "<script>alert(1)</script>",
    "{\"json\": [1]}",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_round_trip_through_paths(client: TestClient, name: str) -> None:
    path = f"/customers/{q(name)}"
    created = client.post("/customers", json={"name": name})
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == path
    assert client.get(path).json() == {"name": name}
    assert name in [c["name"] for c in client.get("/customers").json()]
    assert client.put(path, json={"name": name, "display_name": name}).json() == {"name": name, "display_name": name}

    subscription = client.post("/subscriptions", json=sub(customer=name))
    assert subscription.status_code == 201
    key = f"{name}@2026-06-01T00:00:00+00:00"
    assert subscription.headers["Location"] == f"/subscriptions/{q(key)}"
    assert client.get(f"/subscriptions/{q(key)}").json()["customer_name"] == name
    assert [s["customer_name"] for s in client.get(f"{path}/subscriptions").json()] == [name]
    assert [s["customer_name"] for s in client.get("/subscriptions", params={"customer_name": name}).json()] == [name]
    assert errors(client.delete(path)) == [
        {"field": "name", "reason": f"is used by subscription {key!r}; delete it first"}]
    assert client.delete(f"/subscriptions/{q(key)}").status_code == 204
    assert client.delete(path).status_code == 204
    assert client.get(path).status_code == 404
    assert client.get("/customers/acme").status_code == 200  # nothing else was touched


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_meter_and_plan_names_round_trip(client: TestClient, name: str) -> None:
    assert client.post("/meters", json={"name": name}).status_code == 201
    assert client.get(f"/meters/{q(name)}").json()["name"] == name
    assert client.post("/price_plans", json=plan(name, meter=name)).status_code == 201
    assert client.get(f"/price_plans/{q(name)}").json()["metered_components"][0]["meter_name"] == name
    assert errors(client.delete(f"/meters/{q(name)}")) == [
        {"field": "name", "reason": f"is used by price plan {name!r}; delete or change it first"}]
    assert client.delete(f"/price_plans/{q(name)}").status_code == 204
    assert client.delete(f"/meters/{q(name)}").status_code == 204


def test_an_encoded_slash_stays_inside_its_segment(client: TestClient) -> None:
    # `/customers/x%2Fsubscriptions` is the customer "x/subscriptions", not the
    # subscriptions of "x" (and `/customers/x%2Fusage` not the usage of "x").
    for name in ("x/subscriptions", "x/usage", "acme/subscriptions"):
        assert client.post("/customers", json={"name": name}).status_code == 201
        assert client.get(f"/customers/{q(name)}").json() == {"name": name}
    assert client.get("/customers/acme/subscriptions").json()[0]["customer_name"] == "acme"
    assert client.get("/customers/x/subscriptions").status_code == 404  # no customer "x"


# ---- OpenAPI ---------------------------------------------------------------------------


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    resolved: dict[str, Any] = root["definitions"][ref.removeprefix("#/definitions/")]
    return resolved


def _agrees(seed: dict[str, Any], documented: dict[str, Any], root: dict[str, Any], at: str) -> None:
    seed = _resolve(seed, root)
    if seed.get("nullable"):
        assert documented["anyOf"] == [{"type": seed["type"]}, {"type": "null"}], at
    elif "type" in seed:
        assert documented.get("type") == seed["type"], at
    for keyword in ("format", "enum", "minimum"):
        assert documented.get(keyword) == seed.get(keyword), f"{at}: {keyword}"
    assert sorted(documented.get("required", [])) == sorted(seed.get("required", [])), at
    if "properties" in seed:
        assert set(documented["properties"]) == set(seed["properties"]), at
        for name, child in seed["properties"].items():
            _agrees(child, documented["properties"][name], root, f"{at}.{name}")
    if "items" in seed:
        _agrees(seed["items"], documented["items"], root, f"{at}[]")


@requires_seeds
@pytest.mark.parametrize("path,seed", [("/customers", CUSTOMER_SEED), ("/price_plans", PRICE_PLAN_SEED)])
def test_openapi_documents_each_request_body_as_the_seed_schema_says(client: TestClient, path: str, seed: str) -> None:
    spec = client.get("/openapi.json").json()
    documented = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    root = load_seed_schema(seed)
    _agrees(root, documented, root, path)
    put = spec["paths"][f"{path}/{{name}}"]["put"]["requestBody"]["content"]["application/json"]["schema"]
    assert "name" not in put.get("required", [])


def test_openapi_documents_meter_and_subscription_bodies_and_errors(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    meter = spec["paths"]["/meters"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert meter["properties"]["aggregation"]["enum"] == ["SUM", "COUNT", "MAX", "MIN", "UNIQUE_COUNT"]
    assert meter["additionalProperties"] is False
    subscription = spec["paths"]["/subscriptions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert subscription["required"] == ["customer_name", "price_plan_name", "start_time"]
    assert subscription["properties"]["add_ons"]["items"]["properties"]["quantity"]["minimum"] == 1
    error = spec["paths"]["/customers"]["post"]["responses"]["409"]["content"]["application/json"]["schema"]
    assert error["properties"]["errors"]["items"]["required"] == ["field", "reason"]
    assert "422" not in spec["paths"]["/customers"]["post"]["responses"]
    assert "$ref" not in str(spec["paths"]["/price_plans"])  # bodies are self-contained
