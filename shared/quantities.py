"""Period quantities from the aggregator's state, for one customer's series.

Two kinds of state live in the `series` table (see processing.py): period states of
order-independent meters (one per series and period) and timelines of order-dependent
ones (one per series). This module turns either into the quantity of a period, and
applies `reporting_method: total` (cumulative from the subscription start).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal

from shared import timeline as timelines
from shared.catalog import Catalog
from shared.folding import PeriodState, SeriesState, from_units
from shared.models import Meter
from shared.models.json_types import format_utc
from shared.periods import Period, period_at_index, period_index_at
from shared.series_keys import TRIAL_SUFFIX, parse_series_table_key

Totals = dict[str, dict[str, Decimal]]  # meter -> series -> quantity


def period_totals(
    meters: Mapping[str, Meter],
    series: Mapping[str, SeriesState],
    keys: Iterable[str],
    subscription_start: datetime,
    start: datetime,
    end: datetime,
    upto: datetime | None = None,
) -> Totals:
    """Quantities of [start, end) for every series in `keys`.

    `upto` (open periods only) stops a gauge's integral at the latest known instant
    instead of the period end; closed periods pass None.
    """
    return totals_with_trial(meters, series, keys, subscription_start, start, end, upto, None)[0]


def totals_with_trial(
    meters: Mapping[str, Meter],
    series: Mapping[str, SeriesState],
    keys: Iterable[str],
    subscription_start: datetime,
    start: datetime,
    end: datetime,
    upto: datetime | None,
    trial_end: datetime | None,
) -> tuple[Totals, Totals]:
    """(period totals, trial share) of [start, end).

    The trial share is what the rater subtracts to bill only post-trial usage: the
    period quantity less the quantity of [trial_end, end). Period states of a period
    that straddles the trial end are split in two keys (see processing.TRIAL_SUFFIX).
    """
    keys = list(keys)
    in_trial = trial_end is not None and start < trial_end
    full = _totals(meters, series, keys, subscription_start, start, end, upto, include_trial=True)
    if not in_trial:
        return full, {}
    assert trial_end is not None
    if trial_end >= end:
        return full, full
    post = _totals(meters, series, keys, subscription_start, start, end, upto, include_trial=False, post_from=trial_end)
    share: Totals = {}
    for meter_name, by_series in full.items():
        for series_name, value in by_series.items():
            after = post.get(meter_name, {}).get(series_name, Decimal(0))
            share.setdefault(meter_name, {})[series_name] = value - after
    return full, share


def _totals(
    meters: Mapping[str, Meter],
    series: Mapping[str, SeriesState],
    keys: list[str],
    subscription_start: datetime,
    start: datetime,
    end: datetime,
    upto: datetime | None,
    include_trial: bool,
    post_from: datetime | None = None,
) -> Totals:
    start_text = format_utc(start)
    combined: dict[tuple[str, str], list[PeriodState]] = {}
    exact: dict[tuple[str, str], Decimal] = {}
    for key in keys:
        _, meter_name, series_name, period = parse_series_table_key(key)
        meter = meters.get(meter_name)
        state = series.get(key)
        if meter is None or state is None:
            continue
        cumulative = meter.reporting_method == "total"
        if isinstance(state, timelines.Timeline):
            window_start = subscription_start if cumulative else start
            if post_from is not None:
                window_start = max(window_start, post_from)
            window_end = end
            if upto is not None and meter.meter_type == "GAUGE" and meter.aggregation == "SUM":
                window_end = min(end, max(upto, window_start))
            value = timelines.quantity(meter, state, window_start, window_end)
            if value is not None:
                exact[(meter_name, series_name)] = value
            continue
        trial_part = period.endswith(TRIAL_SUFFIX)
        if trial_part and not include_trial:
            continue
        period_start = period.removesuffix(TRIAL_SUFFIX)
        if cumulative:
            wanted = format_utc(subscription_start) <= period_start < format_utc(end)
        else:
            wanted = period_start == start_text
        if wanted:
            combined.setdefault((meter_name, series_name), []).append(state)
    out: Totals = {}
    for (meter_name, series_name), states in combined.items():
        out.setdefault(meter_name, {})[series_name] = combine(meters[meter_name], states)
    for (meter_name, series_name), value in exact.items():
        out.setdefault(meter_name, {})[series_name] = value
    return out


def combine(meter: Meter, states: list[PeriodState]) -> Decimal:
    """Several states of one series as one quantity: several periods (cumulative
    reporting), or one period's parts before and after a trial's end."""
    if meter.aggregation == "UNIQUE_COUNT":
        uniques: set[str] = set()
        for state in states:
            uniques.update(state.uniques or ())
        return Decimal(len(uniques))
    units = [s.units for s in states if s.events > 0]
    if not units:
        return Decimal(0)
    if meter.aggregation == "MAX":
        return from_units(max(units))
    if meter.aggregation == "MIN":
        return from_units(min(units))
    return from_units(sum(units))


def timeline_periods(
    catalog: Catalog, key: str, state: timelines.Timeline, now: datetime, closed_through: Callable[[str], int]
) -> list[tuple[Period, Decimal]]:
    """(period, quantity) for every period a timeline may have changed, for the store.

    From the period of its earliest point up to the period containing `now`: a gauge
    level carries into periods without points of their own. Periods not yet closed are
    integrated only up to the latest point.
    """
    customer, meter_name, series_name, _ = parse_series_table_key(key)
    meter = catalog.meters.get(meter_name)
    points = state.points
    if meter is None or not points:
        return []
    first = points[0].time
    last = points[-1].time
    rows: list[tuple[Period, Decimal]] = []
    for subscription in catalog.subscriptions_of(customer):
        plan = catalog.price_plans.get(subscription.price_plan_name)
        if plan is None or (subscription.end_time is not None and subscription.end_time <= first):
            continue
        begin = max(first, subscription.start_time)
        stop = min(max(now, last), subscription.end_time or max(now, last))
        if stop < begin:
            continue
        closed = closed_through(subscription.key)
        for index in range(
            period_index_at(subscription.start_time, plan.period, begin),
            period_index_at(subscription.start_time, plan.period, stop) + 1,
        ):
            period = period_at_index(subscription.start_time, plan.period, index, subscription.end_time)
            if period.start >= period.end:
                continue
            upto = None if index < closed else last
            totals = period_totals(
                catalog.meters, {key: state}, [key], subscription.start_time, period.start, period.end, upto
            )
            value = totals.get(meter_name, {}).get(series_name)
            if value is not None:
                rows.append((period, value))
    return rows
