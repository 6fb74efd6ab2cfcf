"""Billing periods: anchored at the subscription start, stepping whole calendar months.

Every boundary is computed from the anchor (never from the previous boundary), so an
anchor on the 31st gives Feb 28/29 and then Mar 31 again, not Mar 28.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime

MONTHS_PER_PERIOD = {"monthly": 1, "quarterly": 3, "annual": 12}


@dataclass(frozen=True, order=True)
class Period:
    start: datetime
    end: datetime
    index: int

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end

    @property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())


def add_months(anchor: datetime, months: int) -> datetime:
    total = anchor.month - 1 + months
    year, month = anchor.year + total // 12, total % 12 + 1
    day = min(anchor.day, calendar.monthrange(year, month)[1])
    return anchor.replace(year=year, month=month, day=day)


def period_at_index(anchor: datetime, period: str, index: int, end_time: datetime | None = None) -> Period:
    step = MONTHS_PER_PERIOD[period]
    start = add_months(anchor, step * index)
    end = add_months(anchor, step * (index + 1))
    if end_time is not None and end > end_time:
        end = end_time
    return Period(start, end, index)


def period_index_at(anchor: datetime, period: str, at: datetime) -> int:
    """Index of the period containing `at` (which must not precede the anchor)."""
    if at < anchor:
        raise ValueError("instant precedes the subscription start")
    step = MONTHS_PER_PERIOD[period]
    months = (at.year - anchor.year) * 12 + (at.month - anchor.month)
    index = max(months // step, 0)
    # The month arithmetic can overshoot by one when `at` falls before the anchor's
    # day/time within its month; step back until the period really contains `at`.
    while index > 0 and add_months(anchor, step * index) > at:
        index -= 1
    while add_months(anchor, step * (index + 1)) <= at:
        index += 1
    return index


def period_containing(anchor: datetime, period: str, at: datetime, end_time: datetime | None = None) -> Period:
    return period_at_index(anchor, period, period_index_at(anchor, period, at), end_time)
