"""Order-dependent meters: GAUGE (levels over time) and COUNTER with running totals.

Their quantities depend on event-time order, not arrival order: a gauge level holds
from its time until the next measurement of the series, and a running total's increment
is `value - previous value`. So these series keep their points sorted by event time
and every period quantity is computed from the points, which makes the result the same
whatever order, duplication or lateness the input had.

A timeline is a JSON-able dict (it lives in a Faust table):
    {"points": [[time_iso, value_text, reset], ...]  # sorted by time, then arrival
     "base": [time_iso, carried_text] | None,         # compacted history (see compact)
     "applied": last source offset folded in}
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from shared.models import Meter
from shared.models.json_types import format_utc

Timeline = dict[str, Any]


def is_order_dependent(meter: Meter) -> bool:
    """Gauges and running-total counters; distinct values are counted the same either way."""
    if meter.meter_type == "GAUGE":
        return True
    return not meter.is_incremental and meter.aggregation != "UNIQUE_COUNT"


def empty_timeline() -> Timeline:
    return {"points": [], "base": None, "applied": -1}


def insert(timeline: Timeline, at: datetime, value: Decimal, reset: bool, offset: int) -> bool:
    """Add one point in time order; False when the offset was already applied (replay)."""
    if offset <= timeline["applied"]:
        return False
    point = [format_utc(at), str(value), reset]  # may raise: before anything changes
    timeline["applied"] = offset
    points: list[list[Any]] = timeline["points"]
    # bisect_right: two points at one instant keep arrival order, deterministically
    # broken by the value text so a shuffled input still sorts the same way.
    index = bisect.bisect_right(points, str(point[0]), key=_time_of)
    while index > 0 and points[index - 1][0] == point[0] and points[index - 1][1] > point[1]:
        index -= 1
    points.insert(index, point)
    return True


def _time_of(point: list[Any]) -> str:
    return str(point[0])


def exact_seconds(span: timedelta) -> Decimal:
    """A timedelta in seconds without passing through a float."""
    return Decimal(span.days * 86400 + span.seconds) + Decimal(span.microseconds) / Decimal(1_000_000)


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def levels(meter: Meter, timeline: Timeline) -> Iterator[tuple[datetime, Decimal]]:
    """(time, level) of a gauge after each point; incremental gauges add to the level."""
    base = timeline["base"]
    level = Decimal(base[1]) if base is not None else None
    if base is not None:
        yield _parse(base[0]), level  # type: ignore[misc]
    for time_text, value_text, _ in timeline["points"]:
        value = Decimal(value_text)
        level = (level or Decimal(0)) + value if meter.is_incremental else value
        yield _parse(time_text), level


def increments(meter: Meter, timeline: Timeline) -> Iterator[tuple[datetime, Decimal]]:
    """(time, increment) of a running-total counter: value - previous (value on reset/first)."""
    base = timeline["base"]
    previous = Decimal(base[1]) if base is not None else None
    for time_text, value_text, reset in timeline["points"]:
        value = Decimal(value_text)
        yield _parse(time_text), value if reset or previous is None else value - previous
        previous = value


def gauge_quantity(meter: Meter, timeline: Timeline, start: datetime, end: datetime) -> Decimal | None:
    """SUM: integral of level x seconds over [start, end); MAX/MIN: extreme level in it,
    including the level carried in at `start`. None when no level exists in the window."""
    steps = list(levels(meter, timeline))
    carried: Decimal | None = None
    inside: list[tuple[datetime, Decimal]] = []
    for at, step_level in steps:
        if at <= start:
            carried = step_level
        elif at < end:
            inside.append((at, step_level))
    if meter.aggregation == "SUM":
        total = Decimal(0)
        cursor: datetime = start
        level: Decimal | None = carried
        for at, next_level in inside:
            if level is not None:
                total += level * exact_seconds(at - cursor)
            cursor, level = at, next_level
        if level is not None:
            total += level * exact_seconds(end - cursor)
        return total
    candidates = ([carried] if carried is not None else []) + [step for _, step in inside]
    if not candidates:
        return None
    return max(candidates) if meter.aggregation == "MAX" else min(candidates)


def counter_quantity(meter: Meter, timeline: Timeline, start: datetime, end: datetime) -> Decimal | None:
    """The meter's aggregation over the increments whose time lies in [start, end)."""
    picked = [inc for at, inc in increments(meter, timeline) if start <= at < end]
    aggregation = meter.aggregation
    if aggregation == "SUM":
        return sum(picked, Decimal(0))
    if aggregation == "COUNT":
        return Decimal(len(picked))
    if aggregation == "UNIQUE_COUNT":
        return Decimal(len(set(picked)))
    if not picked:
        return None
    return max(picked) if aggregation == "MAX" else min(picked)


def quantity(meter: Meter, timeline: Timeline, start: datetime, end: datetime) -> Decimal | None:
    if meter.meter_type == "GAUGE":
        return gauge_quantity(meter, timeline, start, end)
    return counter_quantity(meter, timeline, start, end)


def compact(meter: Meter, timeline: Timeline, before: datetime) -> None:
    """Fold points before `before` into the base, once no measurement can land there.

    Callers pass a cutoff no later than the start of the oldest period that can still
    change (dedup window), so every quantity computed afterwards is unchanged.
    """
    cutoff = format_utc(before)
    keep = [p for p in timeline["points"] if p[0] >= cutoff]
    dropped = len(timeline["points"]) - len(keep)
    if dropped == 0:
        return
    if meter.meter_type == "GAUGE":
        last_time, last_level = None, None
        for at, level in levels(meter, timeline):
            if format_utc(at) < cutoff:
                last_time, last_level = at, level
        carried = last_level
    else:
        last = timeline["points"][dropped - 1]
        last_time, carried = _parse(last[0]), Decimal(last[1])
    timeline["points"] = keep
    if last_time is not None and carried is not None:
        timeline["base"] = [format_utc(last_time), str(carried)]
