"""Price schemes (semantics.md, Rating step 2): golden cases computed by hand."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.pricing import flat, package, price, tiered, volume

D = Decimal
TIERS = [(D(50), D(10)), (D(40), D(20)), (D(30), None)]


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        (0, 0),
        (5, 250),  # 5 x 50
        (10, 500),  # exactly the first cap
        (15, 700),  # 10 x 50 + 5 x 40
        (20, 900),  # 10 x 50 + 10 x 40
        (25, 1050),  # 10 x 50 + 10 x 40 + 5 x 30
    ],
)
def test_tiered_is_graduated(quantity: int, expected: int) -> None:
    assert tiered(D(quantity), TIERS) == D(expected)


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        (5, 250),  # 5 x 50
        (10, 500),  # on the cap: still the first (lower) tier, 10 x 50
        (11, 440),  # 11 x 40
        (15, 600),  # 15 x 40
        (20, 800),  # on the cap: 20 x 40, not 20 x 30
        (21, 630),  # 21 x 30
        (25, 750),  # 25 x 30
    ],
)
def test_volume_prices_every_unit_at_one_tier(quantity: int, expected: int) -> None:
    assert volume(D(quantity), TIERS) == D(expected)


def test_package_rounds_up_to_whole_packages() -> None:
    assert package(D(25), [(D(50), D(10))]) == D(150)  # ceil(2.5) = 3 packages x 50


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [(0, "0"), (2, "1.00"), (99, "1.00"), (100, "1.00"), (150, "2.00"), (300, "3.00")],
)
def test_package_of_100_at_one_dollar(quantity: int, expected: str) -> None:
    assert package(D(quantity), [(D("1.00"), D(100))]) == D(expected)


def test_package_needs_a_positive_size() -> None:
    with pytest.raises(ValueError):
        package(D(5), [(D(1), None)])
    with pytest.raises(ValueError):
        package(D(5), [(D(1), D(0))])


def test_flat_uses_the_first_price() -> None:
    assert flat(D(7), [(D("0.25"), None)]) == D("1.75")


def test_price_dispatches_by_scheme_type() -> None:
    assert price("TIERED", D(25), TIERS) == D(1050)
    assert price("VOLUME", D(25), TIERS) == D(750)
    assert price("FLAT", D(25), TIERS) == D(1250)
    assert price("PACKAGE", D(25), [(D(50), D(10))]) == D(150)


def test_worked_example_tiers() -> None:
    tiers = [(D("0.00"), D(10000)), (D("0.001"), D(100000)), (D("0.0005"), None)]
    assert tiered(D(150000), tiers) == D("115.00")


quantities = st.decimals(min_value=0, max_value=10**9, places=3, allow_nan=False, allow_infinity=False)


@given(quantities, quantities)
def test_tiered_never_decreases_as_quantity_grows(a: Decimal, b: Decimal) -> None:
    low, high = sorted((a, b))
    assert tiered(low, TIERS) <= tiered(high, TIERS)


@given(quantities, st.sampled_from(["FLAT", "TIERED", "VOLUME", "PACKAGE"]))
def test_amounts_are_decimal(quantity: Decimal, scheme: str) -> None:
    tiers = [(D(50), D(10))] if scheme == "PACKAGE" else TIERS
    amount = price(scheme, quantity, tiers)
    assert type(amount) is Decimal
    assert amount >= 0
