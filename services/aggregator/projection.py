"""From the aggregator's series state to the rows of the store's `period_totals` table.

Rows are absolute values versioned by the position of the last item folded in, so
writing a row again (a replay, a resync after a takeover) changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from services.aggregator.closing import Closer
from shared.catalog import Catalog
from shared.folding import PeriodState, SeriesState
from shared.quantities import combine, timeline_periods
from shared.series_keys import TRIAL_SUFFIX, parse_series_table_key
from shared.timeline import Timeline

Row = list[Any]


@dataclass
class Projection:
    catalog: Callable[[], Catalog]
    series: Mapping[str, SeriesState]
    closer: Closer

    def rows(self, key: str, now: datetime) -> list[Row]:
        customer, meter, series, start = parse_series_table_key(key)
        state = self.series.get(key)
        if state is None:
            return []
        catalog = self.catalog()
        if isinstance(state, Timeline):
            closed = partial(self.closer.closed_through, customer)
            return [
                [customer, meter, series, period.start, period.end, value, len(state.points), state.applied]
                for period, value in timeline_periods(catalog, key, state, now, closed)
            ]
        # One store row per period: the pre-trial and post-trial parts together.
        plain = key.removesuffix(TRIAL_SUFFIX)
        parts = [
            s for s in (self.series.get(plain), self.series.get(plain + TRIAL_SUFFIX)) if isinstance(s, PeriodState)]
        meter_model = catalog.meters.get(meter)
        if meter_model is None:
            return []
        # What period_totals gives for this one period, without reading the keys again.
        value = combine(meter_model, parts)
        events = sum(p.events for p in parts)
        applied = max(p.applied for p in parts)
        period_start = datetime.fromisoformat(start.removesuffix(TRIAL_SUFFIX))
        return [[customer, meter, series, period_start, state.end, value, events, applied]]

    def rows_of(self, keys: Iterable[str], now: datetime) -> list[Row]:
        return [row for key in keys for row in self.rows(key, now)]
