"""plan_rules.plan_problems: every rule, with the exact (path, reason) it reports."""

from __future__ import annotations

from typing import Any

import pytest

from shared.models import PricePlan
from shared.plan_rules import plan_problems


def tiers(*pairs: tuple[Any, Any]) -> list[dict[str, Any]]:
    return [{"price": p, "cap": c} for p, c in pairs]


def component(meter: str = "api_calls", scheme: str | None = "FLAT", prices: list[dict[str, Any]] | None = None,
              **extra: Any) -> dict[str, Any]:
    price_scheme: dict[str, Any] = {"prices": tiers((1, None)) if prices is None else prices}
    if scheme is not None:
        price_scheme["scheme_type"] = scheme
    price_scheme.update(extra.pop("scheme_extra", {}))
    return {"meter_name": meter, "meter_display_name": meter, "price_scheme": price_scheme, **extra}


def problems(components: list[dict[str, Any]], **plan: Any) -> list[tuple[str, str]]:
    document = {"name": "p", "period": "monthly", "metered_components": components, **plan}
    return plan_problems(PricePlan.model_validate(document))


def test_a_ratable_plan_has_no_problems() -> None:
    assert problems(
        [
            component("a", "FLAT", tiers((0.5, None))),
            component("b", "TIERED", tiers((0, 10000), (0.001, 100000), (0.0005, None))),
            component("c", "VOLUME", tiers((50, 10), (40, 20), (30, None))),
            component("d", "PACKAGE", tiers((1, 100)), limit=10, watermark=5, minimum_charge=0),
            component("e", "FLAT", scheme_extra={"time_unit_name": "day"}),
        ],
        base_price=49, base_price_frequency="annual", minimum_charge=10, minimum_charge_frequency="monthly",
    ) == []


@pytest.mark.parametrize("field", ["base_price_frequency", "minimum_charge_frequency"])
def test_plan_frequencies(field: str) -> None:
    assert problems([component()], **{field: "weekly"}) == [(field, "must be one of monthly, quarterly, annual")]


def test_a_meter_priced_twice() -> None:
    assert problems([component("a"), component("b"), component("a")]) == [
        ("metered_components[2].meter_name", "prices the same meter twice")
    ]


@pytest.mark.parametrize("field", ["limit", "watermark", "minimum_charge"])
def test_negative_component_numbers(field: str) -> None:
    assert problems([component(**{field: -1})]) == [(f"metered_components[0].{field}", "must not be negative")]


def test_watermark_above_limit() -> None:
    assert problems([component(limit=10, watermark=11)]) == [
        ("metered_components[0].watermark", "must not exceed limit")
    ]
    assert problems([component(limit=10, watermark=10)]) == []


def test_missing_scheme_type() -> None:
    assert problems([component("a", None)]) == [
        ("metered_components[0].price_scheme.scheme_type", "is required to rate the component")
    ]


def test_unknown_time_unit() -> None:
    assert problems([component(scheme_extra={"time_unit_name": "week"})]) == [
        ("metered_components[0].price_scheme.time_unit_name", "must be one of second, minute, hour, day")
    ]


@pytest.mark.parametrize("prices", [[], None])
def test_no_prices(prices: list[Any] | None) -> None:
    c = component()
    if prices is None:
        del c["price_scheme"]["prices"]
    else:
        c["price_scheme"]["prices"] = prices
    assert problems([c]) == [("metered_components[0].price_scheme.prices", "needs at least one price")]


def test_tier_without_price() -> None:
    assert problems([component("a", "TIERED", [{"cap": 10}, {"price": 1, "cap": None}])]) == [
        ("metered_components[0].price_scheme.prices[0].price", "is required")
    ]


@pytest.mark.parametrize("scheme", ["FLAT", "PACKAGE"])
def test_flat_and_package_take_one_price(scheme: str) -> None:
    assert problems([component("a", scheme, tiers((1, 10), (2, 20)))]) == [
        ("metered_components[0].price_scheme.prices", f"{scheme} takes exactly one price")
    ]


@pytest.mark.parametrize("cap", [None, 0, -5])
def test_package_needs_a_positive_size(cap: Any) -> None:
    assert problems([component("a", "PACKAGE", tiers((1, cap)))]) == [
        ("metered_components[0].price_scheme.prices[0].cap", "PACKAGE needs a positive package size")
    ]


@pytest.mark.parametrize("scheme", ["TIERED", "VOLUME"])
def test_only_the_last_tier_may_be_uncapped(scheme: str) -> None:
    assert problems([component("a", scheme, tiers((1, None), (2, None)))]) == [
        ("metered_components[0].price_scheme.prices[0].cap", "only the last tier may be uncapped")
    ]


@pytest.mark.parametrize("scheme", ["TIERED", "VOLUME"])
def test_caps_must_ascend(scheme: str) -> None:
    assert problems([component("a", scheme, tiers((1, 20), (2, 20), (3, None)))]) == [
        ("metered_components[0].price_scheme.prices[1].cap", "caps must be positive and ascending")
    ]
    assert problems([component("a", scheme, tiers((1, 0), (3, None)))]) == [
        ("metered_components[0].price_scheme.prices[0].cap", "caps must be positive and ascending")
    ]


def test_last_tier_must_be_uncapped() -> None:
    assert problems([component("a", "TIERED", tiers((1, 10), (2, 20)))]) == [
        ("metered_components[0].price_scheme.prices[1].cap", "the last tier must be uncapped")
    ]
    # A single capped tier is not a graduated scheme either.
    assert problems([component("a", "VOLUME", tiers((1, 10)))]) == [
        ("metered_components[0].price_scheme.prices[0].cap", "the last tier must be uncapped")
    ]


def test_every_problem_is_reported_at_once() -> None:
    assert problems(
        [component("a", limit=-1), component("a", "TIERED", tiers((1, 10), (2, 5)))],
        base_price_frequency="daily",
    ) == [
        ("base_price_frequency", "must be one of monthly, quarterly, annual"),
        ("metered_components[0].limit", "must not be negative"),
        ("metered_components[1].meter_name", "prices the same meter twice"),
        ("metered_components[1].price_scheme.prices[1].cap", "caps must be positive and ascending"),
        ("metered_components[1].price_scheme.prices[1].cap", "the last tier must be uncapped"),
    ]
