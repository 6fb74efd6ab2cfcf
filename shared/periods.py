"""Billing periods: anchored at the subscription start, stepping whole calendar months.

Every boundary is computed from the anchor (never from the previous boundary), so an
anchor on the 31st gives Feb 28/29 and then Mar 31 again, not Mar 28.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

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


def elapsed_seconds(start: datetime, end: datetime) -> Decimal:
    """Exact seconds from `start` to `end` (microseconds included, never a float).

    Pro-rating divides one of these by another, so both must be exact: a float would
    make the same period rate differently on another machine.
    """
    delta = end - start
    whole = Decimal(delta.days * 86400 + delta.seconds)
    return whole + Decimal(delta.microseconds).scaleb(-6) if delta.microseconds else whole


def charge_windows(
    anchor: datetime, plan_period: str, frequency: str | None, index: int,
) -> list[tuple[datetime, datetime]]:
    """The windows of a per-`frequency` charge that fall due in period `index`.

    A recurring charge (base price, add-on, minimum) is owed once per window of
    `frequency` months, the windows anchored at the subscription start like the periods
    themselves, and it falls due in the period that contains its window's start:
    - frequency no longer than the period (annual plan, monthly fee): the period splits
      into `period / frequency` windows, all due in it (12 for annual/monthly);
    - frequency longer than the period (monthly plan, annual fee): one window, due in the
      first period of each cycle (periods 0, 12, 24, ...) and in no other period.
    The months 1, 3 and 12 divide one another, so windows never straddle a period start.
    Windows are full length here; trials and a short final period are cut out by the caller.
    """
    plan_months = MONTHS_PER_PERIOD[plan_period]
    months = MONTHS_PER_PERIOD[frequency or plan_period]
    first = plan_months * index
    if months <= plan_months:
        offsets = list(range(first, first + plan_months, months))
    else:
        offsets = [first] if first % months == 0 else []
    return [(add_months(anchor, m), add_months(anchor, m + months)) for m in offsets]


def anchor_for_period_ending(end: datetime, period: str = "monthly") -> tuple[datetime, int]:
    """An anchor (subscription start) and index whose period ends exactly at `end`.

    One step back is not always possible: no monthly anchor gives a period ending
    May 31 after one step (Apr 31 does not exist, Apr 30 steps to May 30). Two steps
    back (Mar 31 -> Apr 30 -> May 31) always is, as every boundary is computed from the
    anchor. Used to build demo and test subscriptions that close on a schedule.
    """
    step = MONTHS_PER_PERIOD[period]
    for periods_back in (1, 2, 3):
        anchor = add_months(end, -step * periods_back)
        if add_months(anchor, step * periods_back) == end:
            return anchor, periods_back - 1
    raise ValueError(f"no {period} anchor has a period ending at {end.isoformat()}")
