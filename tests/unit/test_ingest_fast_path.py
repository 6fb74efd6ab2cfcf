"""The ingest fast path gives the usual rules' answer on every batch.

The usual path (model validation, `resolve`, `record_of`) is the reference: on random valid
and invalid batches the fast path accepts exactly the batches it accepts, with the same
records byte for byte, and declines every other one; the service then answers with the
usual path's (index, field, reason) errors, which the API-level property checks too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from unittest import mock

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest import measurement_routes
from services.ingest.api import create_app
from services.ingest.fast_path import FastPath, check
from services.ingest.measurement_routes import record_of
from services.ingest.validation import judge, oversized, parse_measurement
from services.settings import EventTimeSettings, HttpSettings, KafkaSettings, LimitSettings, Settings
from shared.catalog import Catalog, parse_catalog
from shared.models import Customer
from shared.resolution import CatalogIndexes, Limits
from tests.unit.test_ingest_api import FakeSink, FakeView

NOW = datetime(2026, 6, 15, 12, 0, 0, 250000, tzinfo=UTC)
START = NOW - timedelta(days=40)
LIMITS = Limits(max_future=timedelta(minutes=5), dedup_window=timedelta(days=35))
MAX_RECORD_BYTES = 1200  # low enough that long labels make a record too large


def catalog_document() -> dict[str, Any]:
    iso = START.isoformat().replace("+00:00", "Z")
    return {
        "meters": [
            {"name": "api_calls", "data_type": "INT", "aggregation": "SUM", "primary_labels": ["region"]},
            {"name": "storage_gb", "data_type": "FLOAT", "aggregation": "MAX", "meter_type": "GAUGE"},
            {"name": "visitors", "data_type": "STRING", "aggregation": "UNIQUE_COUNT"},
            {"name": "api_requests", "event_name": "request", "data_type": "INT", "aggregation": "SUM",
             "event_label_filter": {"kind": "api"}, "expected_labels": ["region"]},
            {"name": "request_bytes", "event_name": "request", "data_type": "FLOAT", "aggregation": "SUM"},
        ],
        "price_plans": [{"name": "p", "period": "monthly", "metered_components": []}],
        "customers": [
            {"name": "acme"},
            {"name": "globex", "measurement_mappings": [{"label": "tenant", "value": "g1"}]},
            {"name": "initech"},  # no subscription
            {"name": "hooli"},  # its subscription ended ten days ago
        ],
        "subscriptions": [
            {"customer_name": "acme", "price_plan_name": "p", "start_time": iso},
            {"customer_name": "globex", "price_plan_name": "p", "start_time": iso},
            {"customer_name": "hooli", "price_plan_name": "p", "start_time": iso,
             "end_time": (NOW - timedelta(days=10)).isoformat()},
        ],
    }


def make_catalog() -> Catalog:
    catalog, problems = parse_catalog(catalog_document())
    assert problems == []
    return catalog


CATALOG = make_catalog()


def usual_answer(catalog: Catalog, items: list[Any], received_at: datetime) -> tuple[str, Any]:
    """services/ingest/api.py's judging before the fast path existed, step by step."""
    parsed, errors = [], []
    for index, raw in enumerate(items):
        measurement, problems = parse_measurement(raw, index)
        errors.extend(problems)
        if measurement is not None:
            parsed.append(measurement)
    if not errors:
        facts, errors = judge(parsed, catalog, received_at, LIMITS)
    if errors:
        return "invalid", [(e.index, e.field, e.reason) for e in errors]
    records = [record_of(m, f, received_at) for m, f in zip(parsed, facts, strict=True)]
    too_large = oversized(records, parsed, MAX_RECORD_BYTES)
    if too_large:
        return "too large", [(e.index, e.field, e.reason) for e in too_large]
    return "accepted", records


# ---- measurements: every field drawn from valid, invalid and unusual values -----------

def instants() -> st.SearchStrategy[str]:
    def spell(offset: timedelta, micros: int, style: str) -> str:
        at = NOW + offset
        if style == "plain":
            return at.strftime("%Y-%m-%dT%H:%M:%S") + (f".{micros:06d}" if micros else "") + "Z"
        if style == "millis":
            return at.strftime("%Y-%m-%dT%H:%M:%S") + f".{micros // 1000:03d}Z"
        if style == "zeros":
            return at.strftime("%Y-%m-%dT%H:%M:%S") + ".000000Z"
        if style == "offset":
            return (at.astimezone(timezone(timedelta(hours=5, minutes=30)))).isoformat()
        if style == "lower":
            return at.strftime("%Y-%m-%dt%H:%M:%Sz")
        return at.strftime("%Y-%m-%dT%H:%M:%SZ") + "\n"

    edges = st.builds(
        lambda edge, step: edge + step,
        st.sampled_from([-LIMITS.dedup_window, LIMITS.max_future]),
        st.sampled_from([timedelta(seconds=-1), timedelta(microseconds=-1), timedelta(0), timedelta(microseconds=1),
                         timedelta(seconds=1)]),
    )
    within = st.builds(
        spell, st.one_of(st.timedeltas(min_value=-timedelta(days=36), max_value=timedelta(minutes=6)), edges),
        st.integers(0, 999_999), st.sampled_from(["plain", "plain", "millis", "zeros", "offset", "lower", "newline"]),
    )
    odd = st.sampled_from([
        "2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z", "2026-06-15T24:00:00Z", "2026-06-15T12:00:60Z",
        "0000-06-15T12:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-06-15",
        "2026-06-15T12:00:00", "not a time", "", "2026-06-15T12:00:00.1234567Z", "2026-06-15 12:00:00Z",
    ])
    return st.one_of(within, within, within, odd)


texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
plain_texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=12)
hostile_texts = st.sampled_from(["", "a\x00b", "tab\there", "x" * 257, "\x7f", "ünï 😀", "\ud800"])
names = st.one_of(texts.filter(bool), hostile_texts)
known_meters = st.sampled_from(["api_calls", "storage_gb", "visitors", "ghost_meter"])
known_events = st.sampled_from(["request", "other_event"])
known_customers = st.sampled_from(["acme", "globex", "initech", "hooli", "ghost"])
values = st.one_of(
    st.integers(-10**3, 10**3), st.integers(-10**30, 10**30), st.sampled_from([0, 10**26 - 1, 10**26, -10**26]),
    st.floats(allow_nan=False), st.sampled_from([1.5, 1e-7, 1e-13, -0.0, 1e300, 0.1]),
    st.sampled_from(["1.5", "7", "abc", "1E+999999999", "0E-999999999", "0.0000000000001", "NaN", "Infinity",
                     "-0", " 5", "5" * 1025, "1_000"]),
    st.text("ab", min_size=1023, max_size=1025),
    texts, st.booleans(), st.none(), st.just([1]), st.just({"a": 1}),
)
label_keys = st.one_of(st.sampled_from(["region", "kind", "tenant", "host"]), texts, hostile_texts)
label_values = st.one_of(st.sampled_from(["eu", "api", "g1", "web", "x" * 250]), texts, hostile_texts, st.integers())
labels = st.one_of(st.dictionaries(label_keys, label_values, max_size=4),
                   st.dictionaries(st.sampled_from(["region", "kind", "tenant", "host"]),
                                   st.sampled_from(["eu", "api", "g1", "web"]), max_size=3),
                   st.dictionaries(st.integers(0, 99).map(lambda n: f"k{n}"), st.just("v"), min_size=31, max_size=34),
                   st.none(), st.just([]), st.just("region=eu"))
ABSENT = object()


@st.composite
def ordinary_valid(draw: st.DrawFn) -> dict[str, Any]:
    """What producers send every day: the fast path must take these itself."""
    meter = draw(st.sampled_from(["api_calls", "storage_gb", "visitors", "event"]))
    item: dict[str, Any] = {"id": draw(plain_texts), "customer_name": draw(st.sampled_from(["acme", "globex"]))}
    region = {"region": draw(st.sampled_from(["eu", "us", "ü"]))}
    if meter == "event":
        item.update(event_name="request", labels={"kind": draw(st.sampled_from(["api", "web"])), **region},
                    value=draw(st.integers(0, 10**6)))
    else:
        item.update(meter_name=meter, value=draw(
            st.integers(0, 10**25) if meter == "api_calls" else st.one_of(
                st.integers(0, 10**6), st.sampled_from([0.5, 2.25, 1e-7]), st.sampled_from(["3.75", "12"]))))
        if draw(st.booleans()):
            item["labels"] = region
    if meter == "visitors":
        item["value"] = draw(st.one_of(plain_texts, st.integers()))
    if draw(st.booleans()):
        offset = draw(st.timedeltas(min_value=-timedelta(days=30), max_value=timedelta(minutes=4)))
        micros = draw(st.sampled_from([0, 1, 123456, 999999]))
        item["time"] = (NOW + offset).replace(microsecond=micros).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if draw(st.booleans()):
        item["reset_total"] = draw(st.booleans())
    return item


FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "id": st.one_of(texts.filter(bool), hostile_texts, st.integers(), st.none(), st.just(ABSENT)),
    "meter_name": st.one_of(known_meters, st.just(ABSENT), st.none(), names, st.integers()),
    "event_name": st.one_of(st.just(ABSENT), known_events, st.none(), names),
    "customer_name": st.one_of(known_customers, st.just(ABSENT), st.none(), names),
    "value": st.one_of(values, st.just(ABSENT)),
    "time": st.one_of(instants(), instants(), st.just(ABSENT), st.none(), st.integers()),
    "labels": st.one_of(st.just(ABSENT), labels),
    "reset_total": st.one_of(st.just(ABSENT), st.booleans(), st.just("true"), st.none()),
    "unknown_field": st.one_of(st.just(ABSENT), st.integers()),
}


@st.composite
def measurements(draw: st.DrawFn) -> Any:
    """An ordinary measurement with up to three fields redrawn from anything, valid or not."""
    if draw(st.integers(0, 40)) == 0:
        return draw(st.one_of(st.integers(), st.text(max_size=3), st.none(), st.lists(st.integers(), max_size=2)))
    item = dict(draw(ordinary_valid()))
    for field in draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=3)):
        value = draw(FIELDS[field])
        if value is ABSENT:
            item.pop(field, None)
        else:
            item[field] = value
    return item


def fast(items: list[Any], catalog: Catalog = CATALOG) -> Any:
    return FastPath(lambda: catalog, LIMITS, MAX_RECORD_BYTES).records(items, NOW)


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(items=st.lists(measurements(), min_size=1, max_size=4))
def test_the_fast_path_accepts_only_what_the_usual_path_accepts_with_the_same_records(items: list[Any]) -> None:
    verdict, answer = usual_answer(CATALOG, items, NOW)
    records = fast(items)
    if verdict != "accepted":
        assert records is None, (verdict, answer)
    elif records is not None:
        assert records == answer


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(items=st.lists(ordinary_valid(), min_size=1, max_size=6))
def test_the_fast_path_takes_every_ordinary_valid_batch_itself(items: list[Any]) -> None:
    verdict, answer = usual_answer(CATALOG, items, NOW)
    assert verdict == "accepted", answer
    assert fast(items) == answer


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(item=measurements())
def test_the_checks_accept_exactly_what_the_model_accepts(item: Any) -> None:
    measurement, _ = parse_measurement(item, 0)
    checked = check(item)
    if measurement is None:
        assert checked is None
    elif checked is not None:
        assert (checked.id, checked.meter_name, checked.event_name, checked.customer_name, checked.time,
                checked.labels, checked.reset_total) == (
            measurement.id, measurement.meter_name, measurement.event_name, measurement.customer_name,
            measurement.time, measurement.labels, measurement.reset_total)
        assert checked.value == measurement.value


@pytest.mark.parametrize("item", [
    {"id": "a", "meter_name": "api_calls", "customer_name": "acme", "value": 1, "time": "2026-06-15t12:00:00z"},
    {"id": "a", "meter_name": "api_calls", "customer_name": "acme", "value": 1, "time": "2026-06-15T12:00:00Z\n"},
    {"id": "a", "meter_name": "api_calls", "customer_name": "acme", "value": 1, "time": "2026-06-15T12:00:00.000000Z"},
    {"id": "a", "meter_name": "api_calls", "customer_name": "acme", "value": 1, "time": "2026-06-15T17:30:00+05:30"},
])
def test_rare_valid_spellings_of_a_time_give_the_usual_records(item: dict[str, Any]) -> None:
    verdict, answer = usual_answer(CATALOG, [item], NOW)
    assert verdict == "accepted"
    assert fast([item]) == answer


def test_the_index_follows_catalog_changes() -> None:
    catalog = make_catalog()
    path = FastPath(lambda: catalog, LIMITS, MAX_RECORD_BYTES)
    item = {"id": "n1", "meter_name": "api_calls", "customer_name": "newco", "value": 1}
    assert path.records([item], NOW) is None
    first = path.indexes.current()
    assert path.indexes.current() is first  # no change: the same index
    catalog.put(Customer.model_validate({"name": "newco"}))
    assert path.records([item], NOW) is None  # a customer without a subscription
    assert path.indexes.current() is not first
    [sub] = catalog.subscriptions_of("acme")
    catalog.put(sub.model_copy(update={"customer_name": "newco"}))
    verdict, answer = usual_answer(catalog, [item], NOW)
    assert verdict == "accepted" and path.records([item], NOW) == answer
    replaced = make_catalog()
    indexes = CatalogIndexes(lambda: replaced)
    assert indexes.current().catalog is replaced


# ---- the service's answer, whichever path it took -------------------------------------

class FixedClock(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> FixedClock:
        return cls.fromtimestamp(NOW.timestamp(), tz)


@pytest.fixture(scope="module")
def service() -> Iterator[tuple[TestClient, FakeSink]]:
    sink = FakeSink()
    settings_ = Settings(http=HttpSettings(api_key="k"), kafka=KafkaSettings(topic_prefix="u."),
                         event_time=EventTimeSettings(max_future_seconds=300, dedup_window_days=35),
                         limits=LimitSettings(max_record_bytes=MAX_RECORD_BYTES))
    app = create_app(settings_, FakeView(make_catalog()), sink)
    with mock.patch.object(measurement_routes, "datetime", FixedClock):
        yield TestClient(app, headers={"Authorization": "Bearer k"}, raise_server_exceptions=False), sink


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(items=st.lists(st.one_of(measurements(), ordinary_valid()), min_size=1, max_size=4))
def test_the_service_answers_as_the_usual_rules_say(service: tuple[TestClient, FakeSink], items: list[Any]) -> None:
    client, sink = service
    sink.records.clear()
    verdict, answer = usual_answer(CATALOG, items, NOW)
    # json.dumps as producers write it: NaN and Infinity as such, lone surrogates escaped.
    response = client.post("/measurements/batch", content=json.dumps(items).encode(),
                           headers={"Content-Type": "application/json"})
    body = response.json()
    if verdict == "accepted":
        assert (response.status_code, body) == (202, {"accepted": len(items)})
        assert [(k, v) for _, k, v in sink.records] == answer
        return
    assert response.status_code == (400 if verdict == "invalid" else 413)
    assert [(e["index"], e["field"], e["reason"]) for e in body["errors"]] == answer
    assert sink.records == []


def test_a_record_over_the_limit_is_left_to_the_usual_path_which_words_the_413() -> None:
    item = {"id": "big", "meter_name": "api_calls", "customer_name": "acme", "value": 1,
            "labels": dict.fromkeys(("region", "a", "b", "c", "d"), "x" * 250)}
    verdict, answer = usual_answer(CATALOG, [item], NOW)
    assert verdict == "too large" and answer[0][:2] == (0, "labels")
    assert fast([item]) is None


def _item(**fields: Any) -> dict[str, Any]:
    item = {"id": "e", "meter_name": "api_calls", "customer_name": "acme", "value": 1, **fields}
    return {key: value for key, value in item.items() if value is not ABSENT}


def _event(**fields: Any) -> dict[str, Any]:
    return _item(**{"meter_name": ABSENT, "event_name": "request", **fields})


def _at(offset: timedelta) -> str:
    return (NOW + offset).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# Each rule on both sides of its line: (accepted by the usual rules?, measurement).
BOUNDARIES = [
    (True, _item(meter_name="visitors", value="v" * 1024)), (False, _item(meter_name="visitors", value="v" * 1025)),
    (True, _item(labels={f"k{n}": "v" for n in range(32)})), (False, _item(labels={f"k{n}": "v" for n in range(33)})),
    (True, _item(labels={"k" * 256: "v" * 256})), (False, _item(labels={"k" * 257: "v"})),
    (False, _item(labels={"k": "v" * 257})), (True, _item(labels={"k": ""})), (False, _item(labels={"": "v"})),
    (True, _item(id="i" * 256)), (False, _item(id="i" * 257)), (False, _item(id="")), (False, _item(id="a\x7f")),
    (False, _item(labels={"k": "a\x1fb"})), (False, _item(labels={"k": "\ud800"})), (False, _item(id=7)),
    (True, _event(labels={"kind": "api", "region": "eu"})), (False, _event(labels={"kind": "api"})),
    (True, _event(labels={"kind": "web"})), (False, _event(labels={"kind": "web"}, value=1.5 + 1e-13)),
    (True, _event(labels={"kind": "web"}, value="0.000000000001")),
    (False, _event(labels={"kind": "web"}, value="0.0000000000001")),
    (True, _item(value=10**26 - 1)), (False, _item(value=10**26)), (False, _item(value=-1)), (True, _item(value=0)),
    (True, _item(meter_name="storage_gb", value=-(10**26) + 1)),
    (False, _item(meter_name="storage_gb", value=-(10**26))),
    (True, _item(meter_name="visitors", value=-7)), (False, _event(labels={"kind": "web"}, value=-1)),
    (False, _item(value=1.5)), (True, _item(value=2.0)), (True, _item(value="3")),
    (False, _item(value="3.5")), (True, _item(value="0E-999999999")), (False, _item(value="1E+999999999")),
    (False, _item(value=True)), (False, _item(value=None)), (False, _item(value=ABSENT)),
    (True, _item(meter_name="visitors", value=7.0)), (True, _item(meter_name="visitors", value="ü 😀")),
    (True, _item(time=_at(-LIMITS.dedup_window))),
    (False, _item(time=_at(-LIMITS.dedup_window - timedelta(microseconds=1)))),
    (True, _item(time=_at(LIMITS.max_future))), (False, _item(time=_at(LIMITS.max_future + timedelta(microseconds=1)))),
    (False, _item(customer_name="hooli")), (False, _item(customer_name="initech")),
    (True, _item(customer_name="hooli", time=_at(-timedelta(days=11)))),
    (True, _item(customer_name=ABSENT, labels={"tenant": "g1"})),
    (False, _item(customer_name=ABSENT, labels={"tenant": "g2"})),
    (True, _item(customer_name=None, labels={"tenant": "g1"})),
    (False, _item(reset_total="true")), (False, _item(reset_total=None)), (True, _item(reset_total=True)),
    (True, _event(meter_name=None, labels={"kind": "web"})), (False, _item(meter_name=None)),
    (False, _item(extra=1)), (False, _item(labels=None)), (False, _item(time=None, value=[1])),
    (True, _item(time=None)), (False, _item(time=1)),
]


@pytest.mark.parametrize("accepted,item", BOUNDARIES)
def test_each_rule_on_both_sides_of_its_line(accepted: bool, item: dict[str, Any]) -> None:
    verdict, answer = usual_answer(CATALOG, [item], NOW)
    assert (verdict == "accepted") is accepted, answer
    assert fast([item]) == (answer if accepted else None)
