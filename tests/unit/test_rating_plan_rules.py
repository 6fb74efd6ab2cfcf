"""Plan rules for what issue 5 rates: component minimum frequency, add-ons, limits and trials.

A plan the catalog accepts must always be ratable, so these are refused at creation.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.models import PricePlan
from shared.plan_rules import plan_problems

FREQ = "must be one of monthly, quarterly, annual"


def add_on(name: str = "seats", **extra: Any) -> dict[str, Any]:
    return {"feature": {"name": name}, "price": 10, "price_scheme_type": "FLAT",
            "single_use": False, "quantity_enabled": True, **extra}


def problems(**plan: Any) -> list[tuple[str, str]]:
    return plan_problems(PricePlan.model_validate({"name": "p", "period": "monthly", "metered_components": [], **plan}))


def test_a_plan_with_every_feature_is_ratable() -> None:
    assert problems(
        metered_components=[{"meter_name": "m", "meter_display_name": "m", "minimum_charge": 5,
                             "minimum_charge_frequency": "annual",
                             "price_scheme": {"scheme_type": "FLAT", "prices": [{"price": 1}]}}],
        add_ons=[add_on(price_frequency="monthly", charge_frequency="monthly", limit=10),
                 add_on("setup", single_use=True, immediately_charge=True)],
        limits=[{"feature": {"name": "m"}, "limit": 100}],
        trial={"time_length": 2, "time_unit_name": "week", "credit": 10},
    ) == []


def test_component_minimum_charge_frequency() -> None:
    component = {"meter_name": "m", "meter_display_name": "m", "minimum_charge_frequency": "weekly",
                 "price_scheme": {"scheme_type": "FLAT", "prices": [{"price": 1}]}}
    assert problems(metered_components=[component]) == [("metered_components[0].minimum_charge_frequency", FREQ)]


@pytest.mark.parametrize(("change", "expected"), [
    ({"price": -1}, ("add_ons[0].price", "must not be negative")),
    ({"price_scheme_type": "TIERED"},
     ("add_ons[0].price_scheme_type", "must be FLAT (an add-on is charged price x quantity)")),
    ({"price_frequency": "daily"}, ("add_ons[0].price_frequency", FREQ)),
    ({"charge_frequency": "weekly"}, ("add_ons[0].charge_frequency", FREQ)),
    ({"limit": -1}, ("add_ons[0].limit", "must not be negative")),
])
def test_add_on_rules(change: dict[str, Any], expected: tuple[str, str]) -> None:
    assert problems(add_ons=[add_on(**change)]) == [expected]


def test_an_add_on_feature_is_offered_once_and_descriptions_are_distinct() -> None:
    assert problems(add_ons=[add_on("a"), add_on("a")]) == [
        ("add_ons[1].feature.name", "offers the same feature twice"),
    ]
    twin = add_on("b", feature={"name": "b", "display_name": "a"})
    assert problems(add_ons=[add_on("a"), twin]) == [
        ("add_ons[1].feature.display_name", "is the display name of another add-on")]


def test_limit_rules() -> None:
    assert problems(limits=[{"feature": {"name": "x"}, "limit": -1}]) == [("limits[0].limit", "must not be negative")]
    assert problems(limits=[{"feature": {"name": "x"}, "limit": 1}, {"feature": {"name": "x"}, "limit": 2}]) == [
        ("limits[1].feature.name", "limits the same feature twice")]


@pytest.mark.parametrize(("trial", "expected"), [
    ({"time_length": -1, "time_unit_name": "day"}, [("trial.time_length", "must not be negative")]),
    ({"time_length": 3, "time_unit_name": "hour"}, [("trial.time_unit_name", "must be one of day, week, month")]),
    ({"time_length": 3}, [("trial.time_unit_name", "is required with a time_length")]),
    ({"credit": -5}, [("trial.credit", "must not be negative")]),
    ({"credit": 5}, []),
    ({"time_length": 0}, []),
    ({}, []),
])
def test_trial_rules(trial: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert problems(trial=trial) == expected
