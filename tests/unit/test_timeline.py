"""Order-dependent meters by hand: gauges over period boundaries, counters with resets."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from shared.models import Meter
from shared.timeline import Timeline, compact, empty_timeline, insert, quantity

T0 = datetime(2026, 1, 1, tzinfo=UTC)
JAN, FEB, MAR = T0, datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)


def _meter(**fields: Any) -> Meter:
    return Meter(name="m", **fields)


def _timeline(points: list[tuple[datetime, str, bool]], shuffle_seed: int | None = None) -> Timeline:
    order = list(enumerate(points))
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(order)
    timeline = empty_timeline()
    for offset, (at, value, reset) in order:
        insert(timeline, at, Decimal(value), reset, offset if shuffle_seed is None else offset + 1000 * 0)
    return timeline


def _hours(n: float) -> timedelta:
    return timedelta(hours=n)


GAUGE_POINTS = [
    (JAN + _hours(0), "10", False),  # 10 GB from Jan 1 00:00
    (JAN + _hours(24), "30", False),  # 30 GB from Jan 2
    (FEB - _hours(12), "20", False),  # 20 GB from Jan 31 12:00, carried into February
]


def test_gauge_sum_is_level_times_seconds_and_carries_the_level_across_the_boundary() -> None:
    meter = _meter(meter_type="GAUGE", data_type="FLOAT", aggregation="SUM", is_incremental=False)
    timeline = _timeline(GAUGE_POINTS)
    jan = 10 * 24 * 3600 + 30 * (29 * 24 + 12) * 3600 + 20 * 12 * 3600
    assert quantity(meter, timeline, JAN, FEB) == Decimal(jan)
    # February has no point of its own: the 20 GB level holds all month (28 days).
    assert quantity(meter, timeline, FEB, MAR) == Decimal(20 * 28 * 24 * 3600)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_gauge_totals_do_not_depend_on_arrival_order(seed: int) -> None:
    meter = _meter(meter_type="GAUGE", data_type="FLOAT", aggregation="SUM", is_incremental=False)
    ordered = _timeline(GAUGE_POINTS)
    shuffled = empty_timeline()
    points = list(enumerate(GAUGE_POINTS))
    random.Random(seed).shuffle(points)
    for offset, (at, value, reset) in enumerate(p for _, p in points):
        insert(shuffled, at, Decimal(value), reset, offset)
    assert quantity(meter, shuffled, JAN, FEB) == quantity(meter, ordered, JAN, FEB)
    assert quantity(meter, shuffled, FEB, MAR) == quantity(meter, ordered, FEB, MAR)


def test_gauge_max_and_min_include_the_level_carried_in() -> None:
    timeline = _timeline([*GAUGE_POINTS, (FEB + _hours(5), "5", False)])
    peak = _meter(meter_type="GAUGE", data_type="FLOAT", aggregation="MAX", is_incremental=False)
    low = _meter(meter_type="GAUGE", data_type="FLOAT", aggregation="MIN", is_incremental=False)
    assert quantity(peak, timeline, JAN, FEB) == Decimal(30)
    assert quantity(low, timeline, JAN, FEB) == Decimal(10)
    # February: carried 20, then 5.
    assert quantity(peak, timeline, FEB, MAR) == Decimal(20)
    assert quantity(low, timeline, FEB, MAR) == Decimal(5)


def test_before_its_first_report_a_gauge_has_no_level() -> None:
    # docs/decisions.md: the stretch of a period before the first level is not a level of 0;
    # it takes no part in MIN/MAX and adds nothing to SUM.
    timeline = _timeline([(JAN + timedelta(days=10), "8", False), (JAN + timedelta(days=20), "12", False)])
    low = _meter(meter_type="GAUGE", data_type="FLOAT", aggregation="MIN", is_incremental=False)
    peak = _meter(meter_type="GAUGE", data_type="FLOAT", aggregation="MAX", is_incremental=False)
    total = _meter(meter_type="GAUGE", data_type="FLOAT", aggregation="SUM", is_incremental=False)
    day = 86400
    assert quantity(low, timeline, JAN, FEB) == Decimal(8)  # not 0
    assert quantity(peak, timeline, JAN, FEB) == Decimal(12)
    assert quantity(total, timeline, JAN, FEB) == Decimal(8 * 10 * day + 12 * 11 * day)
    # An incremental gauge's first change starts from nothing: its level is the change itself.
    seats = _meter(meter_type="GAUGE", data_type="INT", aggregation="MIN", is_incremental=True)
    assert quantity(seats, _timeline([(JAN + timedelta(days=10), "3", False)]), JAN, FEB) == Decimal(3)
    # A window with no level at all: MIN/MAX have no quantity, SUM is 0.
    assert quantity(low, timeline, JAN, JAN + timedelta(days=10)) is None
    assert quantity(peak, timeline, JAN, JAN + timedelta(days=10)) is None
    assert quantity(total, timeline, JAN, JAN + timedelta(days=10)) == Decimal(0)


def test_incremental_gauge_values_change_the_level() -> None:
    meter = _meter(meter_type="GAUGE", data_type="INT", aggregation="SUM", is_incremental=True)
    # +3 seats at Jan 1, +2 at Jan 11, -4 at Jan 21: levels 3, 5, 1.
    timeline = _timeline([
        (JAN, "3", False), (JAN + timedelta(days=10), "2", False), (JAN + timedelta(days=20), "-4", False),
    ])
    day = 86400
    assert quantity(meter, timeline, JAN, FEB) == Decimal(3 * 10 * day + 5 * 10 * day + 1 * 11 * day)


def test_running_total_counter_increments_with_a_reset() -> None:
    meter = _meter(meter_type="COUNTER", aggregation="SUM", is_incremental=False)
    # Totals 100, 250, reset to 40, 90 (increments 100, 150, 40, 50), last one in Feb.
    timeline = _timeline([
        (JAN + _hours(1), "100", False), (JAN + _hours(2), "250", False),
        (JAN + _hours(3), "40", True), (FEB + _hours(1), "90", False),
    ])
    assert quantity(meter, timeline, JAN, FEB) == Decimal(290)
    assert quantity(meter, timeline, FEB, MAR) == Decimal(50)


def test_a_late_running_total_reshapes_the_next_increment() -> None:
    meter = _meter(meter_type="COUNTER", aggregation="SUM", is_incremental=False)
    timeline = _timeline([(JAN + _hours(1), "100", False), (FEB + _hours(1), "300", False)])
    assert quantity(meter, timeline, FEB, MAR) == Decimal(200)
    insert(timeline, FEB - _hours(1), Decimal(180), False, 99)  # arrives last, belongs in January
    assert quantity(meter, timeline, JAN, FEB) == Decimal(180)
    assert quantity(meter, timeline, FEB, MAR) == Decimal(120)


def test_replaying_an_applied_offset_changes_nothing() -> None:
    timeline = _timeline(GAUGE_POINTS)
    before = timeline.copy()
    assert insert(timeline, JAN, Decimal(999), False, 1) is False
    assert timeline == before


def test_compaction_keeps_every_later_quantity() -> None:
    for meter in [
        _meter(meter_type="GAUGE", data_type="FLOAT", aggregation="SUM", is_incremental=False),
        _meter(meter_type="GAUGE", data_type="FLOAT", aggregation="MAX", is_incremental=False),
        _meter(meter_type="GAUGE", data_type="INT", aggregation="SUM", is_incremental=True),
        _meter(meter_type="COUNTER", aggregation="SUM", is_incremental=False),
    ]:
        points = [*GAUGE_POINTS, (FEB + _hours(7), "25", False), (FEB + _hours(30), "27", False)]
        timeline = _timeline(points)
        expected = quantity(meter, timeline, FEB, MAR)
        compact(meter, timeline, FEB)
        assert len(timeline.points) == 2 and timeline.base is not None
        assert quantity(meter, timeline, FEB, MAR) == expected


def test_points_sort_by_instant_even_when_only_some_carry_microseconds() -> None:
    # As RFC 3339 text, "10:00:00Z" sorts after "10:00:00.5Z"; as instants it comes first.
    # Sorting by the text made the gauge integral negative between the two points.
    meter = _meter(meter_type="GAUGE", data_type="FLOAT", aggregation="SUM", is_incremental=False)
    whole = JAN + _hours(10)
    half = whole + timedelta(milliseconds=500)
    for order in ([(whole, "5"), (half, "7")], [(half, "7"), (whole, "5")]):
        timeline = empty_timeline()
        for position, (at, value) in enumerate(order):
            insert(timeline, at, Decimal(value), False, position)
        assert [p.time for p in timeline.points] == [whole, half]
        # No level before `whole`, 5 for half a second, then 7 until the end of the hour.
        expected = Decimal("2.5") + 7 * (Decimal(3600) - Decimal("0.5"))
        assert quantity(meter, timeline, whole - _hours(1), whole + _hours(1)) == expected


def test_compaction_compares_instants_not_their_text() -> None:
    meter = _meter(meter_type="COUNTER", aggregation="SUM", is_incremental=False)
    # A point half a second into February is after a cutoff at its start, though its text
    # sorts before the cutoff's; compacting it away lost its increment.
    just_after = FEB + timedelta(milliseconds=500)
    timeline = _timeline([(FEB - _hours(1), "10", False), (just_after, "15", False), (FEB + _hours(1), "18", False)])
    compact(meter, timeline, FEB)
    assert [p.time for p in timeline.points] == [just_after, FEB + _hours(1)]
    assert quantity(meter, timeline, FEB, MAR) == Decimal(8)
