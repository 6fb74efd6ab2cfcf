"""/openapi.json documents every route the app serves, with request bodies where they take one."""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from services.ingest.api import create_app
from services.settings import HttpSettings, Settings
from tests.unit.test_ingest_api import FakeSink, FakeView, _client  # noqa: F401


class NoStore:
    async def read(self, name: str, params: dict[str, str]) -> Any:
        return []


class NoWrites:
    def write(self, changes: list[Any]) -> None:
        return None


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    """Every APIRoute, also inside included routers (no prefixes are used here)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            found += _api_routes(route.original_router.routes)
    return found


def test_every_route_is_documented_and_bodies_are_described() -> None:
    _, view = _client(FakeSink())
    app = create_app(Settings(http=HttpSettings(api_key="k")), view, FakeSink(), reader=NoStore(), writer=NoWrites())
    client = TestClient(app)
    assert client.get("/openapi.json").status_code == 401  # like every endpoint but health and metrics
    document = client.get("/openapi.json", headers={"Authorization": "Bearer k"}).json()
    served = {(route.path, method.lower()) for route in _api_routes(app.routes) for method in route.methods}
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert served == documented
    for path, method in [("/measurements", "post"), ("/measurements/batch", "post"), ("/customers", "post"),
                         ("/price_plans", "post"), ("/meters", "post"), ("/subscriptions", "post")]:
        body = document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
        assert body, (path, method)
    batch = document["paths"]["/measurements/batch"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert batch["type"] == "array" and batch["maxItems"] == 10_000
    assert {"/customers/{name}/usage", "/invoices", "/customers/{name}/invoice_preview",
            "/customers/{name}/entitlements"} <= set(document["paths"])


# Every operation as /openapi.json documents it, in document order: (method and path,
# operationId, tags, summary, response statuses, request body, parameters ('?' when
# optional)). Client generators key on the operationId, so a renamed handler is a change
# to the API and must show up here, as must a lost status or parameter.
OPERATIONS = [
    ("POST /measurements/batch", "post_batch_measurements_batch_post", "measurements",
     "Post Batch", "202", "body", ""),
    ("POST /measurements", "post_one_measurements_post", "measurements",
     "Post One", "202", "body", ""),
    ("GET /customers", "list_all_customers_get", "catalog",
     "List every customer", "200", "", ""),
    ("POST /customers", "create_customers_post", "catalog",
     "Create a customer", "201 400 404 409 503", "body", ""),
    ("GET /customers/{name}", "get_one_customers__name__get", "catalog",
     "Read a customer", "200 404 422", "", "name"),
    ("PUT /customers/{name}", "replace_customers__name__put", "catalog",
     "Replace a customer", "200 400 404 409 422 503", "body", "name"),
    ("DELETE /customers/{name}", "delete_customers__name__delete", "catalog",
     "Delete a customer", "204 404 409 422 503", "", "name"),
    ("GET /meters", "list_all_meters_get", "catalog",
     "List every meter", "200", "", ""),
    ("POST /meters", "create_meters_post", "catalog",
     "Create a meter", "201 400 404 409 503", "body", ""),
    ("GET /meters/{name}", "get_one_meters__name__get", "catalog",
     "Read a meter", "200 404 422", "", "name"),
    ("PUT /meters/{name}", "replace_meters__name__put", "catalog",
     "Replace a meter", "200 400 404 409 422 503", "body", "name"),
    ("DELETE /meters/{name}", "delete_meters__name__delete", "catalog",
     "Delete a meter", "204 404 409 422 503", "", "name"),
    ("GET /price_plans", "list_all_price_plans_get", "catalog",
     "List every price plan", "200", "", ""),
    ("POST /price_plans", "create_price_plans_post", "catalog",
     "Create a price plan", "201 400 404 409 503", "body", ""),
    ("GET /price_plans/{name}", "get_one_price_plans__name__get", "catalog",
     "Read a price plan", "200 404 422", "", "name"),
    ("PUT /price_plans/{name}", "replace_price_plans__name__put", "catalog",
     "Replace a price plan", "200 400 404 409 422 503", "body", "name"),
    ("DELETE /price_plans/{name}", "delete_price_plans__name__delete", "catalog",
     "Delete a price plan", "204 404 409 422 503", "", "name"),
    ("POST /subscriptions", "create_subscription_subscriptions_post", "catalog",
     "Create a subscription", "201 400 404 409 503", "body", ""),
    ("GET /subscriptions", "list_subscriptions_subscriptions_get", "catalog",
     "List subscriptions, optionally of one customer", "200 422", "", "customer_name?"),
    ("GET /customers/{name}/subscriptions", "customer_subscriptions_customers__name__subscriptions_get", "catalog",
     "List the subscriptions of a customer", "200 404 422", "", "name"),
    ("GET /subscriptions/{subscription_id}", "get_subscription_subscriptions__subscription_id__get", "catalog",
     "Read a subscription (id: customer_name@start_time, percent-encoded)", "200 404 422", "", "subscription_id"),
    ("PUT /subscriptions/{subscription_id}", "replace_subscription_subscriptions__subscription_id__put", "catalog",
     "Replace a subscription (its customer and start are its identity)", "200 400 404 409 422 503", "body",
     "subscription_id"),
    ("DELETE /subscriptions/{subscription_id}", "delete_subscription_subscriptions__subscription_id__delete", "catalog",
     "Delete a subscription", "204 404 422 503", "", "subscription_id"),
    ("GET /customers/{name}/usage", "usage_customers__name__usage_get", "usage",
     "Usage", "200 422", "", "name meter_name start_time end_time window?"),
    ("GET /invoices", "list_invoices_invoices_get", "invoices",
     "List Invoices", "200 422", "", "customer_name"),
    ("GET /invoices/{invoice_id}", "get_invoice_invoices__invoice_id__get", "invoices",
     "Get Invoice", "200 422", "", "invoice_id"),
    ("GET /customers/{name}/invoice_preview", "invoice_preview_customers__name__invoice_preview_get", "invoices",
     "Invoice Preview", "200 422", "", "name"),
    ("GET /customers/{name}/entitlements", "customer_entitlements_customers__name__entitlements_get", "entitlements",
     "Customer Entitlements", "200 422", "", "name"),
    ("GET /healthz", "healthz_healthz_get", "",
     "Healthz", "200", "", ""),
    ("GET /readyz", "readyz_readyz_get", "",
     "Readyz", "200", "", ""),
    ("GET /metrics", "metrics_metrics_get", "",
     "Metrics", "200", "", ""),
]


def _operations(document: dict[str, Any]) -> list[tuple[str, ...]]:
    return [
        (f"{method.upper()} {path}", op["operationId"], ",".join(op.get("tags", [])), op["summary"],
         " ".join(sorted(op["responses"])), "body" if "requestBody" in op else "",
         " ".join(p["name"] + ("" if p.get("required") else "?") for p in op.get("parameters", [])))
        for path, ops in document["paths"].items()
        for method, op in ops.items()
    ]


def test_the_documented_operations_are_the_api_contract() -> None:
    _, view = _client(FakeSink())
    app = create_app(Settings(), view, FakeSink(), reader=NoStore(), writer=NoWrites())
    document = TestClient(app).get("/openapi.json").json()
    assert _operations(document) == OPERATIONS
    assert set(document["components"]["schemas"]) == {"HTTPValidationError", "ValidationError"}


def test_catalog_errors_are_documented_with_the_error_shape() -> None:
    _, view = _client(FakeSink())
    app = create_app(Settings(), view, FakeSink(), reader=NoStore(), writer=NoWrites())
    document = TestClient(app).get("/openapi.json").json()
    conflict = document["paths"]["/customers/{name}"]["delete"]["responses"]["409"]
    assert conflict["description"] == "the name is taken, or other entities refer to this one"
    schema = conflict["content"]["application/json"]["schema"]
    assert schema["required"] == ["error"]
    assert schema["properties"]["errors"]["items"]["required"] == ["field", "reason"]
    created = document["paths"]["/subscriptions"]["post"]["responses"]["201"]
    assert created["description"] == "the entity as stored"
    put_body = document["paths"]["/subscriptions/{subscription_id}"]["put"]["requestBody"]["content"]
    required = put_body["application/json"]["schema"]["required"]
    assert "customer_name" not in required and "start_time" not in required and "price_plan_name" in required
