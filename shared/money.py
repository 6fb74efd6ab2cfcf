"""Money: Decimal only, rounded once per invoice line to cents, half up."""

from __future__ import annotations

from contextlib import AbstractContextManager
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext

CENT = Decimal("0.01")
# Enough significant digits that 38-digit quantities times 12-decimal prices, and
# pro-rating fractions of them, are never rounded before the one rounding to cents.
PRECISION = 80


def exact_arithmetic() -> AbstractContextManager[Context]:
    """A decimal context for money math: 80 digits, so only `round_cents` ever rounds."""
    ctx = Context(prec=PRECISION)
    return localcontext(ctx)


def round_cents(amount: Decimal) -> Decimal:
    """To cents, half up (0.005 -> 0.01); a half rounds away from zero for negatives too."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def decimal_text(value: Decimal) -> str:
    """A Decimal as plain text without exponent (Decimal('1E+5') -> '100000').

    Trailing fractional zeros are dropped ('1.50' -> '1.5', '0.00' -> '0') and -0 reads
    '0'. No arithmetic context is involved, so no digit is ever rounded away (a
    38-digit quantity stays 38 digits).
    """
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text
