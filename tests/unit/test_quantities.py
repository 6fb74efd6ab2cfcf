"""Period quantities from aggregator state, including cumulative (`total`) reporting."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from shared.folding import PeriodState, to_units
from shared.models import Meter
from shared.quantities import period_totals
from shared.series_keys import series_table_key
from shared.timeline import empty_timeline, insert

JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)


def _period_state(value: str, events: int, uniques: list[str] | None = None) -> PeriodState:
    return PeriodState(MAR, to_units(Decimal(value)), events, 1, None if uniques is None else dict.fromkeys(uniques))


def test_periodic_reporting_takes_only_the_period_and_total_reporting_accumulates() -> None:
    periodic = Meter(name="calls")
    cumulative = Meter(name="seats", reporting_method="total")
    users = Meter(name="users", data_type="STRING", aggregation="UNIQUE_COUNT", reporting_method="total")
    peak = Meter(name="peak", aggregation="MAX", reporting_method="total")
    series = {
        series_table_key("acme", "calls", "", JAN): _period_state("5", 1),
        series_table_key("acme", "calls", "", FEB): _period_state("7", 2),
        series_table_key("acme", "seats", "", JAN): _period_state("5", 1),
        series_table_key("acme", "seats", "", FEB): _period_state("7", 1),
        series_table_key("acme", "users", "", JAN): _period_state("2", 2, ["u1", "u2"]),
        series_table_key("acme", "users", "", FEB): _period_state("2", 2, ["u2", "u3"]),
        series_table_key("acme", "peak", "", JAN): _period_state("9", 1),
        series_table_key("acme", "peak", "", FEB): _period_state("4", 1),
    }
    meters = {m.name: m for m in (periodic, cumulative, users, peak)}
    feb = period_totals(meters, series, series.keys(), JAN, FEB, MAR)
    assert feb == {
        "calls": {"": Decimal(7)},
        "seats": {"": Decimal(12)},
        "users": {"": Decimal(3)},
        "peak": {"": Decimal(9)},
    }
    jan = period_totals(meters, series, series.keys(), JAN, JAN, FEB)
    assert jan == {
        "calls": {"": Decimal(5)}, "seats": {"": Decimal(5)}, "users": {"": Decimal(2)}, "peak": {"": Decimal(9)},
    }


def test_gauge_timelines_integrate_over_the_period_or_from_the_subscription_start() -> None:
    level = Meter(name="gb", meter_type="GAUGE", data_type="FLOAT", is_incremental=False)
    lifetime = Meter(
        name="gb_life", meter_type="GAUGE", data_type="FLOAT", is_incremental=False, reporting_method="total",
    )
    timeline = empty_timeline()
    insert(timeline, JAN, Decimal(2), False, 1)
    series = {
        series_table_key("acme", "gb", "", None): timeline, series_table_key("acme", "gb_life", "", None): timeline,
    }
    meters = {"gb": level, "gb_life": lifetime}
    feb = period_totals(meters, series, series.keys(), JAN, FEB, MAR)
    assert feb["gb"][""] == Decimal(2 * 28 * 86400)
    assert feb["gb_life"][""] == Decimal(2 * (31 + 28) * 86400)
    # An open period integrates only up to the latest known instant.
    upto = datetime(2026, 2, 2, tzinfo=UTC)
    assert period_totals(meters, series, series.keys(), JAN, FEB, MAR, upto=upto)["gb"][""] == Decimal(2 * 86400)
