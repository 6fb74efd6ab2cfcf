"""Rules only a change to an existing catalog can break (shared/catalog_changes.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.catalog import Catalog, parse_catalog
from shared.catalog_changes import MAX_LISTED, dropped_add_ons, in_use, key_of, subscription_key, table
from shared.models import PricePlan
from tests.support.catalogs import worked_example_catalog

START = datetime(2026, 1, 1, tzinfo=UTC)
SSO = {"feature": {"name": "sso"}, "price": 10, "price_scheme_type": "FLAT", "single_use": False,
       "quantity_enabled": True}


def _catalog(customers: tuple[str, ...] = ("acme",), add_on: bool = False) -> Catalog:
    document = worked_example_catalog(START, customers)
    if add_on:
        document["price_plans"][0]["add_ons"] = [SSO]
        document["subscriptions"][0]["add_ons"] = [{"feature": "sso"}]
    catalog, problems = parse_catalog(document)
    assert problems == []
    return catalog


def test_a_meter_a_plan_prices_is_in_use_by_that_plan() -> None:
    assert in_use(_catalog(), "meters", "api_calls") == (
        "is used by price plan 'growth-plan'; delete or change it first"
    )
    assert in_use(_catalog(), "meters", "unpriced") is None


def test_a_plan_is_in_use_by_its_subscriptions_and_a_customer_by_its_own() -> None:
    catalog = _catalog(("acme", "beta"))
    assert in_use(catalog, "price_plans", "growth-plan") == (
        "is used by subscriptions 'acme@2026-01-01T00:00:00+00:00', 'beta@2026-01-01T00:00:00+00:00'; "
        "delete or change them first"
    )
    assert in_use(catalog, "customers", "beta") == (
        "is used by subscription 'beta@2026-01-01T00:00:00+00:00'; delete it first"
    )
    assert in_use(catalog, "subscriptions", "acme@2026-01-01T00:00:00+00:00") is None  # nothing refers to one


def test_at_most_ten_dependents_are_named_and_the_rest_counted() -> None:
    names = tuple(f"c{i:02}" for i in range(MAX_LISTED + 3))
    reason = in_use(_catalog(names), "price_plans", "growth-plan")
    assert reason is not None
    assert "'c09@" in reason and "'c10@" not in reason and " and 3 more;" in reason


def test_a_replaced_plan_must_keep_every_add_on_a_subscription_takes() -> None:
    catalog = _catalog(add_on=True)
    plan = catalog.price_plans["growth-plan"]
    assert dropped_add_ons(catalog, plan) == []
    without = PricePlan.model_validate({**plan.model_dump(exclude_none=True), "add_ons": []})
    assert dropped_add_ons(catalog, without) == [(
        "add_ons",
        "subscription 'acme@2026-01-01T00:00:00+00:00' takes add-on 'sso', which the plan would no longer offer",
    )]
    assert dropped_add_ons(catalog, catalog.customers["acme"]) == []


@pytest.mark.parametrize("subscription_id,key", [
    ("acme@2026-01-01T00:00:00Z", "acme@2026-01-01T00:00:00+00:00"),
    ("acme@2026-01-01T01:00:00+01:00", "acme@2026-01-01T00:00:00+00:00"),  # any RFC 3339 spelling
    ("a@b@2026-01-01T00:00:00Z", "a@b@2026-01-01T00:00:00+00:00"),  # the last '@' splits
    ("acme", None),
    ("@2026-01-01T00:00:00Z", None),
    ("acme@yesterday", None),
])
def test_a_subscription_id_is_customer_at_start(subscription_id: str, key: str | None) -> None:
    assert subscription_key(subscription_id) == key


def test_entities_are_keyed_by_name_or_by_customer_and_start() -> None:
    catalog = _catalog()
    subscription = next(iter(catalog.subscriptions.values()))
    assert key_of(subscription) == "acme@2026-01-01T00:00:00+00:00"
    assert key_of(catalog.meters["api_calls"]) == "api_calls"
    assert table(catalog, "subscriptions") is catalog.subscriptions
    assert set(table(catalog, "customers")) == {"acme"}
