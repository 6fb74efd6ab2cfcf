"""services.aggregator.projection: a period state's store row is what period_totals says of
its period, with the parts before and after a trial's end as one row."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from services.aggregator.projection import Projection
from shared.folding import PeriodState, SeriesState, fold
from shared.models import Meter
from shared.quantities import period_totals
from shared.series_keys import TRIAL_SUFFIX, series_table_key

MARCH, APRIL = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)
METERS = {
    "calls": Meter(name="calls"),
    "peak": Meter(name="peak", aggregation="MAX", data_type="FLOAT"),
    "low": Meter(name="low", aggregation="MIN", data_type="FLOAT"),
    "hits": Meter(name="hits", aggregation="COUNT"),
    "users": Meter(name="users", aggregation="UNIQUE_COUNT", data_type="STRING"),
    "lifetime": Meter(name="lifetime", reporting_method="total"),
}


def projection(series: dict[str, SeriesState], meters: dict[str, Meter] = METERS) -> Projection:
    catalog: Any = SimpleNamespace(meters=meters)
    return Projection(catalog=lambda: catalog, series=series, closer=None)  # type: ignore[arg-type]


def folded(meter: Meter, values: list[str], first_position: int) -> PeriodState:
    state = PeriodState(APRIL)
    for position, value in enumerate(values, first_position):
        fold(state, meter, value if meter.data_type == "STRING" else Decimal(value), position)
    return state


@pytest.mark.parametrize("seed", range(20))
def test_a_row_holds_what_period_totals_gives_for_its_period(seed: int) -> None:
    rng = random.Random(seed)
    series: dict[str, SeriesState] = {}
    for name, meter in METERS.items():
        key = series_table_key("acme", name, "zone=a", MARCH)
        pool = ["-2.5", "0", "3", "7.125", "12345678901234567890.000000000001"]
        if rng.random() < 0.7:
            series[key] = folded(meter, rng.choices(pool, k=rng.randint(1, 5)), 10)
        if rng.random() < 0.5 or key not in series:
            series[key + TRIAL_SUFFIX] = folded(meter, rng.choices(pool, k=rng.randint(1, 5)), 0)
    p = projection(series)
    for key in series:
        [row] = p.rows(key, APRIL)
        customer, meter, labels, start, end, value, events, applied = row
        expected = period_totals(METERS, series, series.keys(), MARCH, MARCH, APRIL)[meter][labels]
        parts = [s for k, s in series.items() if k.startswith(key.removesuffix(TRIAL_SUFFIX))]
        assert (customer, start, end, value) == ("acme", MARCH, APRIL, expected)
        assert events == sum(s.events for s in parts if isinstance(s, PeriodState))
        assert applied == max(s.applied for s in parts if isinstance(s, PeriodState))


def test_distinct_values_before_and_after_a_trial_end_count_once() -> None:
    users = METERS["users"]
    key = series_table_key("acme", "users", "", MARCH)
    series: dict[str, SeriesState] = {
        key + TRIAL_SUFFIX: folded(users, ["ann", "bob"], 0), key: folded(users, ["bob", "cy"], 5),
    }
    assert [row[5] for row in projection(series).rows(key, APRIL)] == [Decimal(3)]


def test_a_meter_gone_from_the_catalog_gives_no_row() -> None:
    key = series_table_key("acme", "calls", "", MARCH)
    series: dict[str, SeriesState] = {key: folded(METERS["calls"], ["1"], 0)}
    assert projection(series, meters={}).rows(key, APRIL) == []
    assert projection(series).rows(series_table_key("acme", "calls", "", APRIL), APRIL) == []
