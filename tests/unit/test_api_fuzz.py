"""Fuzzing the whole HTTP API from its own OpenAPI document: whatever the body, path and
query, the service answers (no 5xx, no crash). Unit-level: fakes for Kafka and the store."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.api import create_app
from services.settings import HttpSettings, Settings
from tests.unit.test_ingest_api import FakeSink, _client
from tests.unit.test_openapi import NoStore

AUTH = {"Authorization": "Bearer k"}


class MemoryWrites:
    """Applies catalog writes to the fake view's catalog, as the real topic round trip would."""

    def __init__(self, view: Any) -> None:
        self.view = view

    def write(self, changes: list[Any]) -> None:
        for kind, key, entity in changes:
            if entity is None:
                self.view.catalog.delete(kind, key)
            else:
                self.view.catalog.put(entity)


def _app() -> tuple[TestClient, list[tuple[str, str]]]:
    _, view = _client(FakeSink())
    settings = Settings(http=HttpSettings(api_key="k"))
    app = create_app(settings, view, FakeSink(), reader=NoStore(), writer=MemoryWrites(view))
    client = TestClient(app, raise_server_exceptions=False)
    document = client.get("/openapi.json", headers=AUTH).json()
    operations = [(path, method) for path, ops in document["paths"].items() for method in ops]
    return client, operations


CLIENT, OPERATIONS = _app()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
field_names = st.sampled_from([
    "id", "meter_name", "event_name", "customer_name", "value", "time", "labels", "reset_total", "name", "period",
    "metered_components", "price_scheme", "prices", "cap", "price", "start_time", "end_time", "price_plan_name",
    "add_ons", "measurement_mappings", "trial", "base_price", "meter_type", "aggregation", "data_type",
])
shaped_objects = st.dictionaries(field_names, json_values, max_size=8)
bodies = json_values | shaped_objects | st.lists(shaped_objects, max_size=5)
segments = st.text(max_size=15) | st.sampled_from(["acme", "api_calls", "growth-plan", "acme@2026-01-01T00:00:00Z"])
queries = st.dictionaries(
    st.sampled_from(["customer_name", "meter_name", "start_time", "end_time", "window", "x"]),
    st.text(max_size=25) | st.sampled_from(["2026-01-01T00:00:00Z", "day", "month", "acme", "api_calls"]),
    max_size=5,
)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(operation=st.sampled_from(OPERATIONS), body=bodies, segment=segments, query=queries,
       raw=st.booleans(), authorised=st.booleans())
def test_no_input_makes_the_api_fail(operation: tuple[str, str], body: Any, segment: str,
                                     query: dict[str, str], raw: bool, authorised: bool) -> None:
    path, method = operation
    url = path
    for placeholder in ("{name}", "{subscription_id}", "{invoice_id}"):
        url = url.replace(placeholder, quote(segment, safe="") or "x")
    content = json.dumps(body).encode() if not raw else json.dumps(body)[: max(len(json.dumps(body)) // 2, 1)].encode()
    response = CLIENT.request(method.upper(), url, params=query, content=content,
                              headers={**(AUTH if authorised else {}), "Content-Type": "application/json"})
    assert response.status_code < 500, (method, url, body, response.text[:500])
    if not authorised and path not in ("/healthz", "/readyz", "/metrics"):
        assert response.status_code == 401
