"""A plain, obviously correct batch computation of period totals, independent of the
streaming code: deduplicate, sort by event time, walk each series once."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.periods import Period


@dataclass(frozen=True)
class MeterSpec:
    name: str
    meter_type: str  # COUNTER | GAUGE
    aggregation: str  # SUM | COUNT | MAX | MIN | UNIQUE_COUNT
    is_incremental: bool

    def as_catalog(self) -> dict[str, Any]:
        return {"name": self.name, "meter_type": self.meter_type, "aggregation": self.aggregation,
                "is_incremental": self.is_incremental, "data_type": "INT", "primary_labels": ["region"]}


def _seconds(a: datetime, b: datetime) -> Decimal:
    delta = b - a
    return Decimal(delta.days * 86400 + delta.seconds) + Decimal(delta.microseconds) / Decimal(10**6)


def expected_totals(
    meters: list[MeterSpec], measurements: list[dict[str, Any]], periods: list[Period], open_index: int
) -> dict[tuple[str, str, datetime], Decimal]:
    """(meter, series, period start) -> quantity. Periods from `open_index` on are open:
    gauge integrals stop at the series' latest point, as the store shows them."""
    unique: dict[tuple[str, str, str], dict[str, Any]] = {}
    for m in measurements:
        unique.setdefault((m["customer_name"], m["meter_name"], m["id"]), m)
    by_series: dict[tuple[str, str], list[tuple[datetime, Decimal, bool]]] = defaultdict(list)
    for m in unique.values():
        series = f"region={m['labels']['region']}"
        by_series[(m["meter_name"], series)].append(
            (datetime.fromisoformat(m["time"]), Decimal(m["value"]), bool(m.get("reset_total")))
        )
    specs = {m.name: m for m in meters}
    out: dict[tuple[str, str, datetime], Decimal] = {}
    for (meter_name, series), points in by_series.items():
        spec = specs[meter_name]
        points.sort(key=lambda p: (p[0], str(p[1])))
        for period in periods:
            value = _period_value(spec, points, period, open_=period.index >= open_index)
            if value is not None:
                out[(meter_name, series, period.start)] = value
    return out


def _period_value(
    spec: MeterSpec, points: list[tuple[datetime, Decimal, bool]], period: Period, open_: bool,
) -> Decimal | None:
    if spec.meter_type == "COUNTER":
        if spec.is_incremental:
            values = [v for t, v, _ in points if period.start <= t < period.end]
        else:
            values, previous = [], None
            for t, v, reset in points:
                increment = v if previous is None or reset else v - previous
                previous = v
                if period.start <= t < period.end:
                    values.append(increment)
        if not values:
            # Incremental counters keep a state per period with usage only; running
            # totals keep a timeline that reports every period from its first point on
            # (0 for SUM/COUNT, nothing for MAX/MIN of no increments).
            if spec.is_incremental or spec.aggregation in ("MAX", "MIN") or period.end <= points[0][0]:
                return None
            return Decimal(0)
        if spec.aggregation == "SUM":
            return sum(values, Decimal(0))
        if spec.aggregation == "COUNT":
            return Decimal(len(values))
        if spec.aggregation == "UNIQUE_COUNT":
            return Decimal(len(set(values)))
        return max(values) if spec.aggregation == "MAX" else min(values)
    # GAUGE: level steps, carried across boundaries.
    level: Decimal | None = None
    steps: list[tuple[datetime, Decimal]] = []
    for t, v, _ in points:
        level = v if not spec.is_incremental else (level or Decimal(0)) + v
        steps.append((t, level))
    carried = None
    inside = []
    for t, lv in steps:
        if t <= period.start:
            carried = lv
        elif t < period.end:
            inside.append((t, lv))
    if spec.aggregation in ("MAX", "MIN"):
        candidates = ([carried] if carried is not None else []) + [lv for _, lv in inside]
        if not candidates:
            return None
        return max(candidates) if spec.aggregation == "MAX" else min(candidates)
    end = period.end
    if open_:
        if not steps or steps[-1][0] < period.start:
            end = period.start if not steps else min(period.end, max(steps[-1][0], period.start))
        else:
            end = min(period.end, steps[-1][0])
    total, cursor, current = Decimal(0), period.start, carried
    for t, lv in inside:
        if t > end:
            break
        if current is not None:
            total += current * _seconds(cursor, t)
        cursor, current = t, lv
    if current is not None and end > cursor:
        total += current * _seconds(cursor, end)
    if carried is None and not inside:
        return None
    return total
