"""Exact expected amounts: fractions at the rating precision (docs/decisions.md, Rating).

Pro-rated expectations such as 17/31 of a fee are computed here at 80 significant
digits, like the rater does, so they are never cut to Decimal's default 28.
"""

from __future__ import annotations

from decimal import Decimal, localcontext

RATING_PRECISION = 80


def ratio(a: int, b: int) -> Decimal:
    """a / b at the rating precision."""
    with localcontext() as ctx:
        ctx.prec = RATING_PRECISION
        return Decimal(a) / Decimal(b)


def times(n: int, fraction: Decimal) -> Decimal:
    """n x fraction at the rating precision."""
    with localcontext() as ctx:
        ctx.prec = RATING_PRECISION
        return n * fraction
