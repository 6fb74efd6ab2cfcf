"""Price schemes: quantity in, unrounded amount out (semantics.md, Rating step 2).

Tiers arrive ordered by cap; `None` means no upper bound. Caps are inclusive upper
bounds, so in VOLUME a quantity exactly on a cap takes that (lower) tier's price.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_CEILING, Decimal

Tier = tuple[Decimal, Decimal | None]  # (price, cap)


def flat(quantity: Decimal, tiers: Sequence[Tier]) -> Decimal:
    return quantity * tiers[0][0]


def tiered(quantity: Decimal, tiers: Sequence[Tier]) -> Decimal:
    amount = Decimal(0)
    floor = Decimal(0)
    for price, cap in tiers:
        if quantity <= floor:
            break
        top = quantity if cap is None else min(quantity, cap)
        amount += price * (top - floor)
        if cap is None:
            break
        floor = cap
    return amount


def volume(quantity: Decimal, tiers: Sequence[Tier]) -> Decimal:
    for price, cap in tiers:
        if cap is None or quantity <= cap:
            return quantity * price
    # Unreachable for a valid plan (plan_rules insists the last tier is uncapped).
    return quantity * tiers[-1][0]


def package(quantity: Decimal, tiers: Sequence[Tier]) -> Decimal:
    price, size = tiers[0]
    if size is None or size <= 0:
        raise ValueError("PACKAGE needs a positive cap (the package size)")
    if quantity <= 0:
        return Decimal(0)
    packages = (quantity / size).to_integral_value(rounding=ROUND_CEILING)
    return packages * price


SCHEMES = {"FLAT": flat, "TIERED": tiered, "VOLUME": volume, "PACKAGE": package}


def price(scheme_type: str, quantity: Decimal, tiers: Sequence[Tier]) -> Decimal:
    return SCHEMES[scheme_type](quantity, tiers)
