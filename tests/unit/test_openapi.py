"""/openapi.json documents every route the app serves, with request bodies where they take one."""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from services.ingest.api import create_app
from services.settings import Settings
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
    app = create_app(Settings(api_key="k"), view, FakeSink(), reader=NoStore(), writer=NoWrites())
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
