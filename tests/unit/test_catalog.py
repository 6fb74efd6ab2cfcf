"""Catalog rules (entity_problems, parse_catalog) and the questions the pipeline asks."""

from __future__ import annotations

from typing import Any

import pytest

from shared.catalog import Catalog, entity_problems, parse_catalog
from shared.models import Customer, Measurement, Meter, PricePlan, Subscription
from tests.support.instants import utc


def plan_doc(name: str = "growth", meter: str = "api_calls", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "period": "monthly",
        "metered_components": [
            {"meter_name": meter, "meter_display_name": meter,
             "price_scheme": {"scheme_type": "FLAT", "prices": [{"price": 1, "cap": None}]}}
        ],
        **extra,
    }


DOCUMENT: dict[str, Any] = {
    "meters": [
        {"name": "api_calls", "event_name": "request"},
        {"name": "eu_requests", "event_name": "request", "event_label_filter": {"region": "eu"}},
        {"name": "storage", "meter_type": "GAUGE", "data_type": "FLOAT"},
    ],
    "price_plans": [
        plan_doc(add_ons=[{"feature": {"name": "sso"}, "price": 10, "price_scheme_type": "FLAT",
                           "single_use": False, "quantity_enabled": True}])
    ],
    "customers": [
        {"name": "acme", "measurement_mappings": [{"label": "tenant", "value": "t-1"}]},
        {"name": "globex", "measurement_mappings": [{"label": "tenant", "value": "t-2"}]},
    ],
    "subscriptions": [
        {"customer_name": "acme", "price_plan_name": "growth", "start_time": "2026-01-01T00:00:00Z",
         "end_time": "2026-03-01T00:00:00Z"},
        {"customer_name": "acme", "price_plan_name": "growth", "start_time": "2026-03-01T00:00:00Z"},
    ],
}


@pytest.fixture
def catalog() -> Catalog:
    parsed, problems = parse_catalog(DOCUMENT)
    assert problems == []
    return parsed


def measurement(**fields: Any) -> Measurement:
    return Measurement.model_validate({"id": "m1", "value": 1, **fields})


# ---- questions -----------------------------------------------------------------


def test_customer_for_by_name(catalog: Catalog) -> None:
    assert catalog.customer_for(measurement(meter_name="api_calls", customer_name="acme")) == "acme"
    assert catalog.customer_for(measurement(meter_name="api_calls", customer_name="nobody")) is None


def test_customer_for_by_measurement_mapping(catalog: Catalog) -> None:
    assert catalog.customer_for(measurement(meter_name="api_calls", labels={"tenant": "t-2"})) == "globex"
    assert catalog.customer_for(measurement(meter_name="api_calls", labels={"tenant": "t-9"})) is None
    assert catalog.customer_for(measurement(meter_name="api_calls", labels={"other": "t-1"})) is None


def test_an_explicit_customer_name_wins_over_mappings(catalog: Catalog) -> None:
    m = measurement(meter_name="api_calls", customer_name="acme", labels={"tenant": "t-2"})
    assert catalog.customer_for(m) == "acme"


def test_meters_for_by_name(catalog: Catalog) -> None:
    assert [m.name for m in catalog.meters_for(measurement(meter_name="storage"))] == ["storage"]
    assert catalog.meters_for(measurement(meter_name="nope")) == []


def test_meters_for_by_event_name_and_label_filter(catalog: Catalog) -> None:
    assert [m.name for m in catalog.meters_for(measurement(event_name="request"))] == ["api_calls"]
    eu = measurement(event_name="request", labels={"region": "eu"})
    assert [m.name for m in catalog.meters_for(eu)] == ["api_calls", "eu_requests"]
    us = measurement(event_name="request", labels={"region": "us"})
    assert [m.name for m in catalog.meters_for(us)] == ["api_calls"]
    assert catalog.meters_for(measurement(event_name="unknown")) == []


def test_subscription_at(catalog: Catalog) -> None:
    first = catalog.subscription_at("acme", utc(2026, 1, 1))
    assert first is not None and first.start_time == utc(2026, 1, 1)
    last_moment = catalog.subscription_at("acme", utc(2026, 2, 28, 23, 59, 59))
    assert last_moment is not None and last_moment.start_time == utc(2026, 1, 1)
    second = catalog.subscription_at("acme", utc(2026, 3, 1))  # end_time is exclusive
    assert second is not None and second.start_time == utc(2026, 3, 1)
    assert catalog.subscription_at("acme", utc(2025, 12, 31, 23, 59)) is None
    assert catalog.subscription_at("globex", utc(2026, 1, 5)) is None


def test_deleting_a_customer_frees_its_mappings(catalog: Catalog) -> None:
    catalog.delete("customers", "globex")
    assert catalog.mapping_owner("tenant", "t-2") is None
    assert catalog.customer_for(measurement(meter_name="api_calls", labels={"tenant": "t-2"})) is None


def test_replacing_a_customer_reindexes_its_mappings(catalog: Catalog) -> None:
    catalog.put(Customer.model_validate(
        {"name": "globex", "measurement_mappings": [{"label": "tenant", "value": "t-3"}]}
    ))
    assert catalog.mapping_owner("tenant", "t-2") is None
    assert catalog.mapping_owner("tenant", "t-3") == "globex"


def test_deleting_a_meter_removes_it_from_events(catalog: Catalog) -> None:
    catalog.delete("meters", "eu_requests")
    eu = measurement(event_name="request", labels={"region": "eu"})
    assert [m.name for m in catalog.meters_for(eu)] == ["api_calls"]


# ---- entity_problems ------------------------------------------------------------


def test_meter_has_no_catalog_rules(catalog: Catalog) -> None:
    assert entity_problems(catalog, Meter.model_validate({"name": "x"})) == []


def test_customer_blank_name(catalog: Catalog) -> None:
    assert entity_problems(catalog, Customer.model_validate({"name": "  "})) == [("name", "must not be blank")]


def test_customer_malformed_mappings(catalog: Catalog) -> None:
    customer = Customer.model_validate(
        {"name": "initech",
         "measurement_mappings": [{"value": "x"}, {"label": "tenant", "value": ""}, {"label": 3, "value": "y"}]}
    )
    assert entity_problems(catalog, customer) == [
        ("measurement_mappings[0].label", "must be a non-empty string"),
        ("measurement_mappings[1].value", "must be a non-empty string"),
        ("measurement_mappings[2].label", "must be a non-empty string"),
    ]


def test_customer_mapping_already_claimed(catalog: Catalog) -> None:
    thief = Customer.model_validate({"name": "initech", "measurement_mappings": [{"label": "tenant", "value": "t-1"}]})
    assert entity_problems(catalog, thief) == [
        ("measurement_mappings", "(tenant=t-1) is already claimed by customer 'acme'")
    ]
    # The owner itself may keep its own mapping when it is updated.
    owner = Customer.model_validate({"name": "acme", "measurement_mappings": [{"label": "tenant", "value": "t-1"}]})
    assert entity_problems(catalog, owner) == []


def test_plan_rules_and_unknown_meter(catalog: Catalog) -> None:
    plan = PricePlan.model_validate(plan_doc("other", "ghost", base_price_frequency="weekly"))
    assert entity_problems(catalog, plan) == [
        ("base_price_frequency", "must be one of monthly, quarterly, annual"),
        ("metered_components[0].meter_name", "names no known meter"),
    ]


def test_plan_name_is_a_key_so_it_follows_the_customer_name_rule(catalog: Catalog) -> None:
    assert entity_problems(catalog, PricePlan.model_validate(plan_doc(" "))) == [("name", "must not be blank")]
    assert entity_problems(catalog, PricePlan.model_validate(plan_doc("a\nb"))) == [
        ("name", "must not contain control characters")
    ]
    assert entity_problems(catalog, PricePlan.model_validate(plan_doc("a/b 100% 'x'"))) == []


def subscription(**fields: Any) -> Subscription:
    base = {"customer_name": "globex", "price_plan_name": "growth", "start_time": "2026-01-01T00:00:00Z"}
    return Subscription.model_validate({**base, **fields})


def test_subscription_ok(catalog: Catalog) -> None:
    assert entity_problems(catalog, subscription(add_ons=[{"feature": "sso", "quantity": 2}])) == []


def test_subscription_unknown_references(catalog: Catalog) -> None:
    assert entity_problems(catalog, subscription(customer_name="nobody", price_plan_name="nothing")) == [
        ("customer_name", "names no known customer"),
        ("price_plan_name", "names no known price plan"),
    ]


def test_subscription_overlap(catalog: Catalog) -> None:
    overlapping = subscription(customer_name="acme", start_time="2026-02-01T00:00:00Z", end_time="2026-02-15T00:00:00Z")
    assert entity_problems(catalog, overlapping) == [
        ("start_time", "overlaps the subscription starting 2026-01-01T00:00:00+00:00")
    ]
    # Back to back is not an overlap; re-putting the same subscription is not either.
    before = subscription(customer_name="acme", start_time="2025-12-01T00:00:00Z", end_time="2026-01-01T00:00:00Z")
    assert entity_problems(catalog, before) == []
    same = subscription(customer_name="acme", start_time="2026-03-01T00:00:00Z")
    assert entity_problems(catalog, same) == []


def test_subscription_add_on_not_offered(catalog: Catalog) -> None:
    assert entity_problems(catalog, subscription(add_ons=[{"feature": "sso"}, {"feature": "audit"}])) == [
        ("add_ons[1].feature", "is not an add-on of the plan")
    ]


# ---- parse_catalog ------------------------------------------------------------


def test_parse_catalog_builds_every_kind(catalog: Catalog) -> None:
    assert sorted(catalog.meters) == ["api_calls", "eu_requests", "storage"]
    assert list(catalog.price_plans) == ["growth"]
    assert sorted(catalog.customers) == ["acme", "globex"]
    assert len(catalog.subscriptions) == 2


def test_parse_catalog_unknown_section_and_non_list() -> None:
    _, problems = parse_catalog({"widgets": [], "meters": {"name": "x"}})
    assert problems == [
        ("widgets", "unknown section; expected one of meters, price_plans, customers, subscriptions"),
        ("meters", "must be a list"),
    ]


def test_parse_catalog_prefixes_shape_and_rule_problems() -> None:
    document = {
        "price_plans": [plan_doc("p1", "ghost")],
        "customers": [{"display_name": "no name"}],
        "subscriptions": [{"customer_name": "acme", "price_plan_name": "p1", "start_time": "2026-01-01T00:00:00Z"}],
    }
    catalog, problems = parse_catalog(document)
    assert problems == [
        ("price_plans[0].metered_components[0].meter_name", "names no known meter"),
        ("customers[0].name", "Field required"),
        ("subscriptions[0].customer_name", "names no known customer"),
    ]
    assert "p1" in catalog.price_plans and catalog.customers == {}


def test_parse_catalog_sees_references_in_dependency_order() -> None:
    # Subscriptions listed first in the document still find the plan and customer.
    document = {"subscriptions": DOCUMENT["subscriptions"], "customers": DOCUMENT["customers"],
                "price_plans": DOCUMENT["price_plans"], "meters": DOCUMENT["meters"]}
    assert parse_catalog(document)[1] == []


def test_parse_catalog_reports_a_claimed_mapping() -> None:
    document = {"customers": [{"name": "a", "measurement_mappings": [{"label": "k", "value": "v"}]},
                              {"name": "b", "measurement_mappings": [{"label": "k", "value": "v"}]}]}
    catalog, problems = parse_catalog(document)
    assert problems == [("customers[1].measurement_mappings", "(k=v) is already claimed by customer 'a'")]
    assert catalog.mapping_owner("k", "v") == "a"
