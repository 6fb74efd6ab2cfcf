"""Rules a price plan must satisfy beyond its seed shape, so it can always be rated.

Each rule returns (field path, reason) pairs; an empty list means the plan is ratable.
"""

from __future__ import annotations

from decimal import Decimal

from shared.models import PricePlan
from shared.models.price_plan import MeteredComponent
from shared.trial import TRIAL_UNITS

FREQUENCIES = ("monthly", "quarterly", "annual")
TIME_UNITS = ("second", "minute", "hour", "day")

Problem = tuple[str, str]


def plan_problems(plan: PricePlan) -> list[Problem]:
    problems: list[Problem] = []
    for field in ("base_price_frequency", "minimum_charge_frequency"):
        value = getattr(plan, field)
        if value is not None and value not in FREQUENCIES:
            problems.append((field, f"must be one of {', '.join(FREQUENCIES)}"))
    seen: set[str] = set()
    for index, component in enumerate(plan.metered_components):
        where = f"metered_components[{index}]"
        if component.meter_name in seen:
            problems.append((f"{where}.meter_name", "prices the same meter twice"))
        seen.add(component.meter_name)
        problems.extend(_component_problems(component, where))
    problems.extend(_add_on_problems(plan))
    problems.extend(_limit_problems(plan))
    problems.extend(_trial_problems(plan))
    return problems


def _component_problems(component: MeteredComponent, where: str) -> list[Problem]:
    problems: list[Problem] = []
    for field in ("limit", "watermark", "minimum_charge"):
        value = getattr(component, field)
        if value is not None and value < 0:
            problems.append((f"{where}.{field}", "must not be negative"))
    frequency = component.minimum_charge_frequency
    if frequency is not None and frequency not in FREQUENCIES:
        problems.append((f"{where}.minimum_charge_frequency", f"must be one of {', '.join(FREQUENCIES)}"))
    if component.limit is not None and component.watermark is not None and component.watermark > component.limit:
        problems.append((f"{where}.watermark", "must not exceed limit"))
    scheme = component.price_scheme
    at = f"{where}.price_scheme"
    if scheme.scheme_type is None:
        return [*problems, (f"{at}.scheme_type", "is required to rate the component")]
    if scheme.time_unit_name is not None and scheme.time_unit_name not in TIME_UNITS:
        problems.append((f"{at}.time_unit_name", f"must be one of {', '.join(TIME_UNITS)}"))
    tiers = scheme.prices or []
    if not tiers:
        return [*problems, (f"{at}.prices", "needs at least one price")]
    for index, tier in enumerate(tiers):
        if tier.price is None:
            problems.append((f"{at}.prices[{index}].price", "is required"))
    if scheme.scheme_type in ("FLAT", "PACKAGE") and len(tiers) != 1:
        problems.append((f"{at}.prices", f"{scheme.scheme_type} takes exactly one price"))
    if scheme.scheme_type == "PACKAGE":
        cap = tiers[0].cap
        if cap is None or cap <= 0:
            problems.append((f"{at}.prices[0].cap", "PACKAGE needs a positive package size"))
    if scheme.scheme_type in ("TIERED", "VOLUME"):
        problems.extend(_tier_problems([t.cap for t in tiers], at))
    return problems


def _tier_problems(caps: list[Decimal | None], at: str) -> list[Problem]:
    problems: list[Problem] = []
    previous = Decimal(0)
    for index, cap in enumerate(caps):
        last = index == len(caps) - 1
        if cap is None:
            if not last:
                problems.append((f"{at}.prices[{index}].cap", "only the last tier may be uncapped"))
            continue
        if cap <= previous:
            problems.append((f"{at}.prices[{index}].cap", "caps must be positive and ascending"))
        previous = cap
    if caps and caps[-1] is not None:
        problems.append((f"{at}.prices[{len(caps) - 1}].cap", "the last tier must be uncapped"))
    return problems


def _add_on_problems(plan: PricePlan) -> list[Problem]:
    """Add-ons are charged `price x quantity` (semantics.md), so only a FLAT scheme is ratable.

    Each feature is offered once, and add-on lines are told apart by their description
    (feature display name, else name) when a correction is computed, so those are unique too.
    """
    problems: list[Problem] = []
    names: set[str] = set()
    descriptions: set[str] = set()
    for index, add_on in enumerate(plan.add_ons or []):
        where = f"add_ons[{index}]"
        name = add_on.feature.name
        description = add_on.feature.display_name or name
        if name in names:
            problems.append((f"{where}.feature.name", "offers the same feature twice"))
        elif description in descriptions:
            problems.append((f"{where}.feature.display_name", "is the display name of another add-on"))
        names.add(name)
        descriptions.add(description)
        if add_on.price < 0:
            problems.append((f"{where}.price", "must not be negative"))
        if add_on.price_scheme_type != "FLAT":
            problems.append((f"{where}.price_scheme_type", "must be FLAT (an add-on is charged price x quantity)"))
        for field in ("price_frequency", "charge_frequency"):
            value = getattr(add_on, field)
            if value is not None and value not in FREQUENCIES:
                problems.append((f"{where}.{field}", f"must be one of {', '.join(FREQUENCIES)}"))
        if add_on.limit is not None and add_on.limit < 0:
            problems.append((f"{where}.limit", "must not be negative"))
    return problems


def _limit_problems(plan: PricePlan) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[str] = set()
    for index, entry in enumerate(plan.limits or []):
        where = f"limits[{index}]"
        if entry.feature.name in seen:
            problems.append((f"{where}.feature.name", "limits the same feature twice"))
        seen.add(entry.feature.name)
        if entry.limit < 0:
            problems.append((f"{where}.limit", "must not be negative"))
    return problems


def _trial_problems(plan: PricePlan) -> list[Problem]:
    """A trial's window must be computable: a known unit whenever it has a length."""
    trial = plan.trial
    if trial is None:
        return []
    problems: list[Problem] = []
    if trial.time_length is not None and trial.time_length < 0:
        problems.append(("trial.time_length", "must not be negative"))
    unit = trial.time_unit_name
    if unit is not None and unit not in TRIAL_UNITS:
        problems.append(("trial.time_unit_name", f"must be one of {', '.join(TRIAL_UNITS)}"))
    elif unit is None and (trial.time_length or 0) > 0:
        problems.append(("trial.time_unit_name", "is required with a time_length"))
    if trial.credit is not None and trial.credit < 0:
        problems.append(("trial.credit", "must not be negative"))
    return problems
