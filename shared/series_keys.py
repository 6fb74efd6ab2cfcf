"""How a series' state and an id are keyed: one text each, the same in memory, in the
aggregator's state log and in its ClickHouse rows.

    series key: customer SEP meter SEP series SEP period
        period: the period's start (format_utc), or TIMELINE for an order-dependent
        series' whole timeline; TRIAL_SUFFIX appended for usage before a trial's end
    dedup key:  customer SEP meter SEP id

SEP is the ASCII unit separator: a measurement's names, id and labels cannot hold control
characters (shared/models/measurement.py), so no part of a key contains it.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from shared.models.json_types import format_utc

SEP = "\x1f"
TIMELINE = "*"
# Usage before a trial's end, in the period the trial ends in, is kept apart so the
# rater can bill only what came after it (see shared/quantities.totals_with_trial).
TRIAL_SUFFIX = "~trial"


class SeriesKey(NamedTuple):
    """A series key read back into its parts (`period` as written: a start, or TIMELINE)."""

    customer: str
    meter: str
    series: str
    period: str

    @classmethod
    def parse(cls, key: str) -> SeriesKey:
        customer, meter, rest = key.split(SEP, 2)
        series, period = rest.rsplit(SEP, 1)
        return cls(customer, meter, series, period)

    @property
    def text(self) -> str:
        return SEP.join(self)

    @property
    def is_timeline(self) -> bool:
        return self.period == TIMELINE


def series_table_key(customer: str, meter: str, series: str, period_start: datetime | None) -> str:
    """Period state key; `period_start=None` keys the series' whole timeline instead."""
    period = TIMELINE if period_start is None else format_utc(period_start)
    return SEP.join([customer, meter, series, period])


def parse_series_table_key(key: str) -> SeriesKey:
    return SeriesKey.parse(key)


def dedup_key(customer: str, meter: str, measurement_id: str) -> str:
    return SEP.join([customer, meter, measurement_id])
