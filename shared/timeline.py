"""Order-dependent meters: GAUGE (levels over time) and COUNTER with running totals.

Their quantities depend on event-time order, not arrival order: a gauge level holds
from its time until the next measurement of the series, and a running total's increment
is `value - previous value`. So these series keep their points sorted by event time
and every period quantity is computed from the points, which makes the result the same
whatever order, duplication or lateness the input had.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from shared.models import Meter
from shared.models.measurement import utc_text


class Point(NamedTuple):
    time: datetime
    value: Decimal
    reset: bool


@dataclass(slots=True)
class Timeline:
    """One series' points, sorted by time, then by value text (see insert)."""

    points: list[Point] = field(default_factory=list)
    base: tuple[datetime, Decimal] | None = None  # the level or total carried from compacted history
    applied: int = -1  # the position of the last item folded in

    def copy(self) -> Timeline:
        return Timeline(list(self.points), self.base, self.applied)

    def to_json(self) -> list[Any]:
        base = None if self.base is None else [utc_text(self.base[0]), str(self.base[1])]
        return [[[utc_text(p.time), str(p.value), p.reset] for p in self.points], base, self.applied]

    @classmethod
    def from_json(cls, data: list[Any] | dict[str, Any]) -> Timeline:
        """Read `to_json`, or the dict written before states were typed (logs of earlier releases)."""
        if isinstance(data, dict):
            data = [data["points"], data["base"], data["applied"]]
        points, base, applied = data
        return cls(
            [Point(datetime.fromisoformat(t), Decimal(v), bool(r)) for t, v, r in points],
            None if base is None else (datetime.fromisoformat(base[0]), Decimal(base[1])),
            applied,
        )


def is_order_dependent(meter: Meter) -> bool:
    """Gauges and running-total counters; distinct values are counted the same either way."""
    if meter.meter_type == "GAUGE":
        return True
    return not meter.is_incremental and meter.aggregation != "UNIQUE_COUNT"


def empty_timeline() -> Timeline:
    return Timeline()


def insert(timeline: Timeline, at: datetime, value: Decimal, reset: bool, position: int) -> bool:
    """Add one point in time order; False when the position was already applied (replay)."""
    if position <= timeline.applied:
        return False
    point = Point(at, value, reset)
    points = timeline.points
    # Sorted by the instant itself, not its text: RFC 3339 text without microseconds
    # ("...:00Z") sorts after the same second with them ("...:00.5Z").
    # bisect_right: two points at one instant keep arrival order, deterministically
    # broken by the value text so a shuffled input still sorts the same way.
    index = bisect.bisect_right(points, at, key=_time_of)
    text = str(value)
    while index > 0 and points[index - 1].time == at and str(points[index - 1].value) > text:
        index -= 1
    points.insert(index, point)
    timeline.applied = position
    return True


def _time_of(point: Point) -> datetime:
    return point.time


def exact_seconds(span: timedelta) -> Decimal:
    """A timedelta in seconds without passing through a float."""
    return Decimal(span.days * 86400 + span.seconds) + Decimal(span.microseconds) / Decimal(1_000_000)


def levels(meter: Meter, timeline: Timeline) -> Iterator[tuple[datetime, Decimal]]:
    """(time, level) of a gauge after each point; incremental gauges add to the level."""
    base = timeline.base
    level = base[1] if base is not None else None
    if base is not None:
        yield base
    for at, value, _ in timeline.points:
        level = (level or Decimal(0)) + value if meter.is_incremental else value
        yield at, level


def increments(meter: Meter, timeline: Timeline) -> Iterator[tuple[datetime, Decimal]]:
    """(time, increment) of a running-total counter: value - previous (value on reset/first)."""
    base = timeline.base
    previous = base[1] if base is not None else None
    for at, value, reset in timeline.points:
        yield at, value if reset or previous is None else value - previous
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
    keep = [p for p in timeline.points if p.time >= before]
    dropped = len(timeline.points) - len(keep)
    if dropped == 0:
        return
    if meter.meter_type == "GAUGE":
        last_time, last_level = None, None
        for at, level in levels(meter, timeline):
            if at < before:
                last_time, last_level = at, level
        carried = last_level
    else:
        last = timeline.points[dropped - 1]
        last_time, carried = last.time, last.value
    timeline.points = keep
    if last_time is not None and carried is not None:
        timeline.base = (last_time, carried)
