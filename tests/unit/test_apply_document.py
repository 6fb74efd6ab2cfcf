"""`metering catalog apply` judges a file against the live catalog and publishes only it."""

from __future__ import annotations

from shared.catalog import apply_document, parse_catalog

BASE = {
    "meters": [{"name": "api_calls"}],
    "price_plans": [{"name": "p", "period": "monthly", "metered_components": []}],
    "customers": [{"name": "acme"}],
}


def test_only_the_documents_entities_are_changes_and_the_live_catalog_is_untouched() -> None:
    live, problems = parse_catalog(BASE)
    assert problems == []
    changes, problems = apply_document(live.copy(), {"customers": [{"name": "globex"}]})
    assert problems == []
    assert [(kind, key) for kind, key, _ in changes] == [("customers", "globex")]
    assert sorted(live.customers) == ["acme"]


def test_references_resolve_against_the_live_catalog() -> None:
    live, _ = parse_catalog(BASE)
    sub = {"customer_name": "acme", "price_plan_name": "p", "start_time": "2026-01-01T00:00:00Z"}
    changes, problems = apply_document(live.copy(), {"subscriptions": [sub]})
    assert problems == [] and len(changes) == 1
    changes, problems = apply_document(live.copy(), {"subscriptions": [{**sub, "price_plan_name": "nope"}]})
    assert problems == [("subscriptions[0].price_plan_name", "names no known price plan")]


def test_repeats_unknown_sections_and_non_lists_are_refused() -> None:
    live, _ = parse_catalog(BASE)
    _, problems = apply_document(
        live.copy(), {"customers": [{"name": "x"}, {"name": "x"}], "customer": [], "meters": {"name": "m"}}
    )
    assert ("customers[1]", "'x' appears more than once in this document") in problems
    assert ("customer", "unknown section; expected one of meters, price_plans, customers, subscriptions") in problems
    assert ("meters", "must be a list") in problems
