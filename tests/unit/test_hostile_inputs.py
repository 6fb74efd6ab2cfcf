"""Findings of the hostile-input review, each reproduced: oversized records, malformed and
deeply nested bodies, out-of-range instants, unbounded names, month windows.

Clients do not raise server exceptions, so a crash shows up as the 500 a caller sees.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pydantic
import pytest
from confluent_kafka import KafkaError, KafkaException
from fastapi.testclient import TestClient

from services.ingest.api import create_app
from services.ingest.publisher import Publisher, RecordTooLarge
from services.settings import HttpSettings, KafkaSettings, LimitSettings, Settings
from shared.catalog import parse_catalog
from shared.models import Customer, Measurement, Meter, PricePlan, Subscription
from shared.models.limits import MAX_ID_LENGTH, MAX_LABEL_LENGTH, MAX_NAME_LENGTH, MAX_VALUE_LENGTH
from shared.money import decimal_text
from shared.resolution import Limits, resolve
from tests.support.catalogs import worked_example_catalog
from tests.unit.test_api_fuzz import MemoryWrites
from tests.unit.test_ingest_api import FakeSink, FakeView

KEY = "unit-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
LIBRDKAFKA_MESSAGE_MAX_BYTES = 1_000_000
MEASUREMENT_PATHS = ["/measurements", "/measurements/batch"]
CATALOG_PATHS = ["/customers", "/meters", "/price_plans", "/subscriptions"]


class BrokerLikeSink(FakeSink):
    """Produces record by record and refuses one over librdkafka's limit when it gets to
    it, as Producer.produce() does: the records before it are already on their way."""

    async def publish(self, topic: str, records: list[tuple[bytes, bytes]]) -> None:
        for key, value in records:
            if len(key) + len(value) > LIBRDKAFKA_MESSAGE_MAX_BYTES:
                raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
            self.records.append((topic, key, value))


class Rows:
    """A store reader answering every query with the given rows."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    async def read(self, name: str, params: dict[str, str]) -> Any:
        return self.rows


def _app(sink: FakeSink | None = None, rows: list[dict[str, Any]] | None = None, **limits: Any) -> TestClient:
    document = worked_example_catalog(datetime.now(UTC) - timedelta(days=3))
    document["meters"].append({"name": "visitors", "data_type": "STRING", "aggregation": "UNIQUE_COUNT"})
    catalog, problems = parse_catalog(document)
    assert problems == []
    view = FakeView(catalog)
    settings = Settings(
        http=HttpSettings(api_key=KEY), kafka=KafkaSettings(topic_prefix="u."), limits=LimitSettings(**limits),
    )
    app = create_app(settings, view, sink or FakeSink(),
                     reader=Rows(rows or []), writer=MemoryWrites(view))
    return TestClient(app, headers=AUTH, raise_server_exceptions=False)


def _m(i: int, **fields: Any) -> dict[str, Any]:
    return {"id": f"m{i}", "meter_name": "api_calls", "customer_name": "acme", "value": 5, **fields}


def _only_error(response: Any) -> dict[str, Any]:
    [error] = response.json()["errors"]
    result: dict[str, Any] = error
    return result


# ---- A: a batch with an oversized record is refused whole, before producing ----------


def test_a_batch_with_an_item_over_the_record_limit_is_refused_before_anything_is_produced() -> None:
    sink = BrokerLikeSink()
    client = _app(sink)
    oversized = _m(1, meter_name="visitors", value="v" * 1_100_000)  # a STRING meter's value
    response = client.post("/measurements/batch", json=[_m(0), oversized])
    assert response.status_code in (400, 413), response.text
    assert _only_error(response)["index"] == 1 and _only_error(response)["field"] == "value"
    assert sink.records == []


def test_a_batch_with_a_megabyte_label_value_is_refused_before_anything_is_produced() -> None:
    sink = BrokerLikeSink()
    response = _app(sink).post("/measurements/batch", json=[_m(0), _m(1, labels={"k": "x" * 1_100_000})])
    assert response.status_code == 400
    assert _only_error(response) == {"index": 1, "field": "labels.k",
                                     "reason": f"String should have at most {MAX_LABEL_LENGTH} characters"}
    assert sink.records == []


def test_records_over_the_record_limit_are_413_naming_index_and_largest_field() -> None:
    sink = BrokerLikeSink()
    client = _app(sink, max_record_bytes=2048)
    labels = {f"label-{n}": "x" * 100 for n in range(30)}  # within the model's limits
    response = client.post("/measurements/batch", json=[_m(0), _m(1, labels=labels)])
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "record too large"
    error = _only_error(response)
    assert (error["index"], error["field"]) == (1, "labels")
    assert error["reason"].endswith("a record holds at most 2048 bytes")
    assert sink.records == []
    single = client.post("/measurements", json=_m(2, labels=labels))
    assert single.status_code == 413 and "index" not in _only_error(single)


class RecordingProducer:
    """Stands in for confluent_kafka.Producer: records what would have been produced."""

    def __init__(self) -> None:
        self.produced: list[bytes] = []

    def produce(self, topic: str, key: bytes, value: bytes, on_delivery: Any) -> None:
        self.produced.append(value)

    def poll(self, timeout: float) -> int:
        time.sleep(timeout)
        return 0

    def flush(self, timeout: float) -> int:
        return 0

    def __len__(self) -> int:
        return 0


def test_the_publisher_checks_every_record_size_before_producing_any() -> None:
    publisher = Publisher("127.0.0.1:9", max_record_bytes=1024)
    producer = RecordingProducer()
    publisher._producer = producer  # type: ignore[assignment]  # what would reach the broker
    try:
        with pytest.raises(RecordTooLarge) as raised:
            asyncio.run(publisher.publish("t", [(b"k", b"v"), (b"k", b"x" * 2000)]))
        assert raised.value.index == 1
        assert producer.produced == []
    finally:
        publisher.close(timeout=1)


@pytest.mark.parametrize("value,reason", [
    ("1E+999999999", "is too large (at most 26 integer digits)"),
    ("1E-999999999", "has too many decimal places (at most 12)"),
    ("0.0000000000001", "has too many decimal places (at most 12)"),
])
def test_extreme_exponents_in_a_decimal_string_are_400_not_an_overflow(value: str, reason: str) -> None:
    sink = FakeSink()
    response = _app(sink).post("/measurements", json=_m(0, value=value))
    assert response.status_code == 400, response.text
    assert _only_error(response) == {"field": "value", "reason": reason}
    assert sink.records == []


@pytest.mark.parametrize("value", ["0.000000000001", "1.500000000000000000", "99999999999999999999999999.999999999999"])
def test_values_within_26_integer_and_12_fractional_digits_are_accepted(value: str) -> None:
    # Trailing zeros are not places. (api_calls is an INT meter: judged on its own here.)
    from shared.resolution import magnitude_problems

    assert magnitude_problems(Decimal(value)) == []


def test_a_zero_with_a_huge_exponent_is_zero() -> None:
    # Accepted as sent (the record keeps the producer's text); judged, it is a plain 0,
    # never spelled out with its billion zeros.
    assert _app().post("/measurements", json=_m(0, value="0E-999999999")).status_code == 202
    catalog, _ = parse_catalog(worked_example_catalog(datetime.now(UTC) - timedelta(days=3)))
    now = datetime.now(UTC)
    limits = Limits(max_future=timedelta(minutes=5), dedup_window=timedelta(days=35))
    facts, problems = resolve(Measurement.model_validate(_m(0, value="0E-999999999")), catalog, now, limits)
    assert problems == [] and decimal_text(Decimal(facts[0].value)) == "0"


# ---- B: every malformed body is a 400 with the usual error shape ---------------------

DEEP = b"[" * 100_000 + b"]" * 100_000
LONG_NUMBER = b'{"name": "x", "value": ' + b"1" * 5000 + b"}"


@pytest.mark.parametrize("path", MEASUREMENT_PATHS + CATALOG_PATHS)
@pytest.mark.parametrize(
    "body", [DEEP, LONG_NUMBER, b'{"name": ' + DEEP + b"}"], ids=["deep", "long-number", "deep-field"],
)
def test_malformed_bodies_are_400_on_body(path: str, body: bytes) -> None:
    response = _app().post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    payload = response.json()
    assert set(payload) == {"error", "errors"} and payload["error"] == "invalid body"
    error = _only_error(response)
    assert error["field"] == "body" and error["reason"].startswith("body is not valid JSON"), error


@pytest.mark.parametrize("path", CATALOG_PATHS)
def test_catalog_bodies_nested_beyond_what_the_view_can_read_back_are_400(path: str) -> None:
    nested = b'{"name": "deep", "extra": ' + b"[" * 150 + b"]" * 150 + b"}"  # parses; pydantic reads back ~200
    response = _app().post(path, content=nested, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert _only_error(response) == {"field": "body", "reason": "body is nested more than 32 levels deep"}


def test_a_body_over_the_limit_is_413_in_the_usual_shape() -> None:
    response = _app(max_body_bytes=2048).post("/measurements/batch", json=[_m(i) for i in range(40)])
    assert response.status_code == 413
    assert _only_error(response) == {"field": "body", "reason": "at most 2048 bytes"}


# ---- C: out-of-range instants on usage reads ------------------------------------------


@pytest.mark.parametrize("start,end,field", [
    ("0001-01-01T00:00:00+01:00", "2026-01-01T00:00:00Z", "start_time"),  # before year 1 in UTC
    ("2026-01-01T00:00:00Z", "9999-12-31T23:00:00-02:00", "end_time"),  # after year 9999 in UTC
    ("9999-12-31T00:00:00Z", "9999-12-31T12:00:00Z", "end_time"),  # its day window ends in 10000
])
def test_usage_instants_out_of_range_are_400_naming_the_field(start: str, end: str, field: str) -> None:
    response = _app().get("/customers/acme/usage",
                          params={"meter_name": "api_calls", "start_time": start, "end_time": end, "window": "day"})
    assert response.status_code == 400, response.text
    assert _only_error(response)["field"] == field


# ---- D: names are bounded, in the models and so in every path -------------------------

LONG = "n" * (MAX_NAME_LENGTH + 1)


@pytest.mark.parametrize("path,body,field", [
    ("/customers", {"name": LONG}, "name"),
    ("/meters", {"name": LONG}, "name"),
    ("/price_plans", {"name": LONG, "period": "monthly", "metered_components": []}, "name"),
    ("/subscriptions", {"customer_name": LONG, "price_plan_name": "growth-plan",
                        "start_time": "2026-01-01T00:00:00Z"}, "customer_name"),
    ("/measurements", _m(0, customer_name=LONG), "customer_name"),
    ("/measurements", _m(0, meter_name=LONG), "meter_name"),
    ("/measurements", {**_m(0, event_name=LONG), "meter_name": None}, "event_name"),
    ("/measurements", _m(0, id="i" * (MAX_ID_LENGTH + 1)), "id"),
    ("/measurements", _m(0, labels={"k" * (MAX_LABEL_LENGTH + 1): "v"}), "labels"),
    ("/measurements", _m(0, value="7" * (MAX_VALUE_LENGTH + 1)), "value"),
])
def test_names_over_their_limit_are_400_naming_the_field(path: str, body: dict[str, Any], field: str) -> None:
    response = _app().post(path, json={k: v for k, v in body.items() if v is not None})
    assert response.status_code == 400, response.text
    assert _only_error(response)["field"].startswith(field), response.text


def test_an_error_about_a_huge_label_key_does_not_echo_it() -> None:
    response = _app().post("/measurements", json=_m(0, labels={"k" * 1_000_000: "v"}))
    assert response.status_code == 400
    error = _only_error(response)
    assert error["field"].startswith("labels.kkk") and error["field"].endswith("...[key]")
    assert len(response.content) < 1000


def test_names_at_their_limit_are_accepted() -> None:
    client = _app()
    name = "顧" * MAX_NAME_LENGTH
    assert client.post("/customers", json={"name": name}).status_code == 201
    assert client.post("/meters", json={"name": "m" * MAX_NAME_LENGTH}).status_code == 201
    longest = _m(0, id="i" * MAX_ID_LENGTH, labels={"k" * MAX_LABEL_LENGTH: "v" * MAX_LABEL_LENGTH})
    assert client.post("/measurements", json=longest).status_code == 202


def test_a_two_megabyte_name_is_413_not_a_retry() -> None:
    response = _app().post("/customers", json={"name": "x" * 2_000_000})
    assert response.status_code == 413
    assert _only_error(response)["field"] == "body"


def test_an_entity_that_encodes_beyond_a_record_is_413() -> None:
    # "1e300" is five bytes in the body and 301 digits in the stored entity.
    tiers = [{"price": 0, "cap": (n + 1) * 1e300} for n in range(20)] + [{"price": 0, "cap": None}]
    plan = {"name": "huge", "period": "monthly", "metered_components": [{
        "meter_name": "api_calls", "meter_display_name": "calls",
        "price_scheme": {"scheme_type": "TIERED", "prices": tiers}}]}
    response = _app(max_record_bytes=4096).post("/price_plans", json=plan)
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "entity too large" and _only_error(response)["field"] == "body"


@pytest.mark.parametrize("field", ["id", "meter_name", "event_name", "customer_name"])
def test_the_measurement_model_bounds_every_name_as_the_aggregator_reads_it(field: str) -> None:
    record = {**_m(0), field: "x" * (MAX_NAME_LENGTH + 1)}
    with pytest.raises(pydantic.ValidationError) as raised:
        Measurement.model_validate_json(pydantic.TypeAdapter(dict[str, Any]).dump_json(record))
    assert [e["loc"] for e in raised.value.errors()] == [(field,)]


def test_catalog_models_bound_names() -> None:
    with pytest.raises(pydantic.ValidationError):
        Customer.model_validate({"name": LONG})
    with pytest.raises(pydantic.ValidationError):
        PricePlan.model_validate({"name": LONG, "period": "monthly", "metered_components": []})
    with pytest.raises(pydantic.ValidationError):
        Meter.model_validate({"name": LONG})
    with pytest.raises(pydantic.ValidationError):
        Subscription.model_validate(
            {"customer_name": "a", "price_plan_name": LONG, "start_time": "2026-01-01T00:00:00Z"}
        )


# ---- E: a month window has its end ----------------------------------------------------


@pytest.mark.parametrize("window,stored,start,end", [
    # The aggregator's read API sends ClickHouse's toStartOfMonth (a Date) as a date.
    ("month", "2026-11-01", "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"),
    ("month", "2026-12-01T00:00:00Z", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"),
    ("day", "2026-11-05T00:00:00Z", "2026-11-05T00:00:00Z", "2026-11-06T00:00:00Z"),
    ("hour", "2026-11-05T10:00:00Z", "2026-11-05T10:00:00Z", "2026-11-05T11:00:00Z"),
])
def test_usage_windows_carry_their_end(window: str, stored: str, start: str, end: str) -> None:
    client = _app(rows=[{"window_start": stored, "series": "", "value": "5"}])
    response = client.get("/customers/acme/usage", params={
        "meter_name": "api_calls", "start_time": "2026-11-01T00:00:00Z", "end_time": "2027-01-01T00:00:00Z",
        "window": window})
    assert response.status_code == 200, response.text
    assert response.json()["data"] == [{"window_start": start, "window_end": end, "series": "", "value": "5"}]


def test_a_negative_value_on_a_counter_is_400_naming_the_value() -> None:
    response = _app().post("/measurements", json=_m(0, value=-5))
    assert response.status_code == 400
    error = _only_error(response)
    assert (error["field"], error["reason"]) == ("value", "must not be negative for COUNTER meter 'api_calls'")
