"""Rules a price plan must satisfy beyond its seed shape, so it can always be rated.

Each rule returns (field path, reason) pairs; an empty list means the plan is ratable.
"""

from __future__ import annotations

from decimal import Decimal

from shared.models import PricePlan
from shared.models.price_plan import MeteredComponent

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
    return problems


def _component_problems(component: MeteredComponent, where: str) -> list[Problem]:
    problems: list[Problem] = []
    for field in ("limit", "watermark", "minimum_charge"):
        value = getattr(component, field)
        if value is not None and value < 0:
            problems.append((f"{where}.{field}", "must not be negative"))
    if component.limit is not None and component.watermark is not None:
        if component.watermark > component.limit:
            problems.append((f"{where}.watermark", "must not exceed limit"))
    scheme = component.price_scheme
    at = f"{where}.price_scheme"
    if scheme.scheme_type is None:
        return problems + [(f"{at}.scheme_type", "is required to rate the component")]
    if scheme.time_unit_name is not None and scheme.time_unit_name not in TIME_UNITS:
        problems.append((f"{at}.time_unit_name", f"must be one of {', '.join(TIME_UNITS)}"))
    tiers = scheme.prices or []
    if not tiers:
        return problems + [(f"{at}.prices", "needs at least one price")]
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
