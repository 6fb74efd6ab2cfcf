"""shared.resolution.resolve: each validation rule with the exact (field, reason)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from shared.catalog import Catalog, parse_catalog
from shared.models import Measurement, Meter
from shared.resolution import Limits, resolve, series_key

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
LIMITS = Limits(max_future=timedelta(minutes=5), dedup_window=timedelta(days=35))


def meter_doc(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, **fields}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    parsed, problems = parse_catalog(
        {
            "meters": [
                meter_doc("api_calls", event_name="request", primary_labels=["region"]),
                meter_doc("eu_calls", event_name="request", event_label_filter={"region": "eu"}),
                meter_doc("cpu", data_type="FLOAT", aggregation="MAX"),
                meter_doc("users", data_type="STRING", aggregation="UNIQUE_COUNT"),
                meter_doc("user_ids", data_type="INT", aggregation="UNIQUE_COUNT"),
                meter_doc("jobs", expected_labels=["region", "queue"]),
                meter_doc("odometer", is_incremental=False),
                meter_doc("level", meter_type="GAUGE", is_incremental=True),
            ],
            "price_plans": [
                {"name": "basic", "period": "monthly", "metered_components": []},
            ],
            "customers": [
                {"name": "acme", "measurement_mappings": [{"label": "tenant", "value": "t-1"}]},
                {"name": "lapsed"},
            ],
            "subscriptions": [
                {"customer_name": "acme", "price_plan_name": "basic", "start_time": "2026-01-01T00:00:00Z"},
                {"customer_name": "lapsed", "price_plan_name": "basic", "start_time": "2026-01-01T00:00:00Z",
                 "end_time": "2026-03-01T00:00:00Z"},
            ],
        }
    )
    assert problems == []
    return parsed


def run(catalog: Catalog, **fields: Any) -> tuple[list[Any], list[tuple[str, str]]]:
    document = {"id": "m1", "customer_name": "acme", "meter_name": "api_calls", "value": 1, **fields}
    document = {k: v for k, v in document.items() if v is not None}
    return resolve(Measurement.model_validate(document), catalog, NOW, LIMITS)


def test_a_valid_measurement_gives_one_fact(catalog: Catalog) -> None:
    facts, problems = run(catalog, value=3, labels={"region": "eu"}, time="2026-03-10T11:00:00Z")
    assert problems == []
    [fact] = facts
    assert (fact.customer_name, fact.meter.name, fact.series, fact.value, fact.time) == (
        "acme", "api_calls", "region=eu", Decimal(3), datetime(2026, 3, 10, 11, tzinfo=UTC)
    )


def test_time_defaults_to_received_at(catalog: Catalog) -> None:
    facts, _ = run(catalog)
    assert facts[0].time == NOW


def test_customer_by_measurement_mapping(catalog: Catalog) -> None:
    facts, problems = run(catalog, customer_name=None, labels={"tenant": "t-1"})
    assert problems == [] and facts[0].customer_name == "acme"


def test_unknown_customer(catalog: Catalog) -> None:
    assert run(catalog, customer_name="nobody") == ([], [("customer_name", "unknown customer 'nobody'")])


def test_no_customer_and_no_mapping(catalog: Catalog) -> None:
    assert run(catalog, customer_name=None, labels={"tenant": "t-404"}) == (
        [], [("customer_name", "missing, and no customer's measurement_mappings match the labels")]
    )


def test_unknown_meter(catalog: Catalog) -> None:
    assert run(catalog, meter_name="ghost") == ([], [("meter_name", "unknown meter 'ghost'")])


def test_event_name_feeds_every_matching_meter(catalog: Catalog) -> None:
    facts, problems = run(catalog, meter_name=None, event_name="request", labels={"region": "eu"})
    assert problems == []
    assert [(f.meter.name, f.series) for f in facts] == [("api_calls", "region=eu"), ("eu_calls", "")]


def test_event_name_with_no_matching_meter(catalog: Catalog) -> None:
    assert run(catalog, meter_name=None, event_name="click") == (
        [], [("event_name", "no meter takes event_name 'click' with these labels")]
    )


def test_int_meter_refuses_a_fraction(catalog: Catalog) -> None:
    assert run(catalog, value=1.5) == ([], [("value", "must be a whole number for INT meter 'api_calls'")])
    assert run(catalog, value="2.5") == ([], [("value", "must be a whole number for INT meter 'api_calls'")])


def test_int_meter_accepts_a_whole_number_written_as_decimal(catalog: Catalog) -> None:
    facts, problems = run(catalog, value=2.0)
    assert problems == [] and facts[0].value == Decimal(2)


def test_numeric_meter_refuses_non_numeric_text(catalog: Catalog) -> None:
    assert run(catalog, value="lots") == ([], [("value", "must be a number for INT meter 'api_calls'")])
    assert run(catalog, meter_name="cpu", value="high") == ([], [("value", "must be a number for FLOAT meter 'cpu'")])


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity"])
def test_numeric_meter_refuses_non_finite_text(catalog: Catalog, text: str) -> None:
    assert run(catalog, meter_name="cpu", value=text) == ([], [("value", "must be a finite number")])


def test_numeric_text_is_read_as_a_number(catalog: Catalog) -> None:
    facts, problems = run(catalog, meter_name="cpu", value="0.25")
    assert problems == [] and facts[0].value == Decimal("0.25")


def test_too_large_a_value(catalog: Catalog) -> None:
    assert run(catalog, value=10**26) == ([], [("value", "is too large (at most 26 integer digits)")])
    assert run(catalog, value=10**26 - 1)[1] == []


@pytest.mark.parametrize("meter,value", [
    ("api_calls", -1), ("api_calls", "-1E+3"), ("cpu", "-3.5"), ("odometer", -10),
])
def test_a_counter_refuses_a_negative_value(catalog: Catalog, meter: str, value: Any) -> None:
    facts, problems = run(catalog, meter_name=meter, value=value)
    assert facts == []
    assert problems == [("value", f"must not be negative for COUNTER meter {meter!r}")]


@pytest.mark.parametrize("meter,value,folded", [
    ("api_calls", "-0", Decimal(0)), ("api_calls", "-0E-20", Decimal(0)),
    ("level", -4, Decimal(-4)), ("user_ids", -7, Decimal(-7)),
])
def test_negative_values_where_they_are_meaningful(catalog: Catalog, meter: str, value: Any, folded: Any) -> None:
    facts, problems = run(catalog, meter_name=meter, value=value)
    assert problems == []
    assert [fact.value for fact in facts] == [folded]


def test_string_value_for_a_string_unique_count_meter(catalog: Catalog) -> None:
    facts, problems = run(catalog, meter_name="users", value="alice")
    assert problems == [] and facts[0].value == "alice"
    # A JSON number on a STRING meter is read as its text, the same text for 7 and 7.0.
    assert run(catalog, meter_name="users", value=7)[0][0].value == "7"
    assert run(catalog, meter_name="users", value=7.0)[0][0].value == "7"


def test_string_value_for_a_numeric_unique_count_meter(catalog: Catalog) -> None:
    assert run(catalog, meter_name="user_ids", value="alice") == (
        [], [("value", "must be a number for INT meter 'user_ids'")]
    )


def test_expected_labels_missing(catalog: Catalog) -> None:
    assert run(catalog, meter_name="jobs", labels={"queue": "q"}) == (
        [], [("labels.region", "required by meter 'jobs'")]
    )
    assert run(catalog, meter_name="jobs") == (
        [], [("labels.region", "required by meter 'jobs'"), ("labels.queue", "required by meter 'jobs'")]
    )
    assert run(catalog, meter_name="jobs", labels={"queue": "q", "region": "eu"})[1] == []


def test_time_more_than_five_minutes_in_the_future(catalog: Catalog) -> None:
    at = NOW + timedelta(minutes=5, seconds=1)
    assert run(catalog, time=at.isoformat()) == ([], [("time", "is more than 300 s in the future")])
    assert run(catalog, time=(NOW + timedelta(minutes=5)).isoformat())[1] == []


def test_time_older_than_the_dedup_window(catalog: Catalog) -> None:
    at = NOW - timedelta(days=35, seconds=1)
    assert run(catalog, time=at.isoformat()) == ([], [("time", "is older than the 35-day dedup window")])
    assert run(catalog, time=(NOW - timedelta(days=35)).isoformat())[1] == []


def test_no_subscription_covers_the_time(catalog: Catalog) -> None:
    assert run(catalog, customer_name="lapsed", time="2026-03-01T00:00:00Z") == (
        [], [("time", "customer 'lapsed' has no subscription covering 2026-03-01T00:00:00+00:00")]
    )
    assert run(catalog, customer_name="lapsed", time="2026-02-28T23:59:59Z")[1] == []


def test_every_problem_is_reported(catalog: Catalog) -> None:
    at = (NOW + timedelta(hours=1)).isoformat()
    assert run(catalog, customer_name="nobody", meter_name="ghost", time=at) == (
        [],
        [
            ("time", "is more than 300 s in the future"),
            ("customer_name", "unknown customer 'nobody'"),
            ("meter_name", "unknown meter 'ghost'"),
        ],
    )


def test_series_key_for_primary_labels() -> None:
    meter = Meter.model_validate({"name": "m", "primary_labels": ["region", "tier"]})
    assert series_key(meter, {"tier": "gold", "region": "eu", "other": "x"}) == "region=eu&tier=gold"
    assert series_key(meter, {"region": "eu"}) == "region=eu&tier="
    assert series_key(Meter.model_validate({"name": "m"}), {"region": "eu"}) == ""
