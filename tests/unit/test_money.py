"""Money: cents rounding half up (semantics.md, Rating step 4) and decimal text."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.money import decimal_text, round_cents

D = Decimal


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("10.275", "10.28"),
        ("10.271", "10.27"),
        ("10.2749", "10.27"),
        ("0.005", "0.01"),
        ("0.004", "0.00"),
        ("115", "115.00"),
        ("164.0000", "164.00"),
        # ROUND_HALF_UP in Decimal rounds a half away from zero, so negatives mirror positives.
        ("-0.005", "-0.01"),
        ("-10.275", "-10.28"),
        ("-10.271", "-10.27"),
    ],
)
def test_round_cents_half_up(amount: str, expected: str) -> None:
    rounded = round_cents(D(amount))
    assert rounded == D(expected)
    assert str(rounded) == expected  # always exactly two places


@given(st.decimals(min_value=-10**9, max_value=10**9, places=6, allow_nan=False, allow_infinity=False))
def test_round_cents_is_symmetric(amount: Decimal) -> None:
    assert round_cents(-amount) == -round_cents(amount)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (D("1E+5"), "100000"),
        (D("100"), "100"),
        (D("1.50"), "1.5"),
        (D("0.00"), "0"),
        (D("-0"), "0"),
        (D("-2.50"), "-2.5"),
        (D("1.5E-7"), "0.00000015"),
        (D("150000"), "150000"),
        # More digits than the default 28-digit context: nothing may be rounded away.
        (D("12345678901234567890123456789012345678"), "12345678901234567890123456789012345678"),
        (D("1234567890123456789012345678901234567.5"), "1234567890123456789012345678901234567.5"),
        (D("1E+30"), "1" + "0" * 30),
    ],
)
def test_decimal_text(value: Decimal, expected: str) -> None:
    assert decimal_text(value) == expected


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_decimal_text_round_trips_and_has_no_exponent(value: Decimal) -> None:
    text = decimal_text(value)
    assert "E" not in text.upper()
    assert D(text) == value
