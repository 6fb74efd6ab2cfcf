"""Which part of a billing period the customer pays for, and how many charges fall due in it.

Every time-based charge (base price, recurring add-on, component and plan minimums) is
owed once per window of its frequency (`periods.charge_windows`) and pro-rated by the
seconds of that window the customer actually pays for. Two things cut a window short:
- the trial: `[subscription start, trial end)` is free;
- the subscription's end, when the period being rated is the shortened final one (a plan
  change ends one subscription and starts another, so it is the same case).

Pro-rating per window, not per period, is what keeps the cases apart: an annual plan with
a monthly fee and a one-month trial owes exactly 11 fees, and a monthly plan with an
annual fee and a 14-day trial owes that fee for 351 of the year's 365 days (not
17/31 of it, and not nothing).

A window longer than the period (monthly plan, annual fee) is charged up front in the
first period of its cycle; it is cut only when the subscription ends inside that very
period. A later end does not reach back to reduce what was charged (no refunds), so a
period rates the same whenever it is rated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from shared.models import PricePlan, Subscription
from shared.money import exact_arithmetic
from shared.periods import MONTHS_PER_PERIOD, Period, add_months, charge_windows, elapsed_seconds, period_at_index
from shared.trial import is_first_period_after_trial, trial_end


@dataclass(frozen=True)
class Coverage:
    anchor: datetime  # the subscription start: charge windows are anchored here
    plan_period: str
    period: Period  # the period being rated, already cut at the subscription end
    full_end: datetime  # where the period would end had the subscription not ended
    trial_end: datetime | None = None

    @property
    def shortened(self) -> bool:
        return self.period.end < self.full_end

    def windows(self, frequency: str | None) -> list[tuple[datetime, datetime]]:
        """Full windows of a per-`frequency` charge due in this period (see periods.charge_windows).

        For the plan's own frequency the window is the period itself, taken from
        `period.start` / `full_end` so that a coverage built without the anchor (see
        `coverage_for`) is still exact for the common case.
        """
        if (frequency or self.plan_period) == self.plan_period:
            return [(self.period.start, self.full_end)]
        return charge_windows(self.anchor, self.plan_period, frequency, self.period.index)

    def charge_due(self, frequency: str | None) -> bool:
        """Whether a per-`frequency` charge falls due in this period at all."""
        return bool(self.windows(frequency))

    def charge_quantity(self, frequency: str | None) -> Decimal:
        """How many per-`frequency` charges this period owes, pro-rated by seconds.

        1 for a plain full period; 12 for an annual period of a monthly fee; 0 in the
        off-cycle periods of a longer fee; a fraction when a trial or the subscription's
        end cuts a window (each window by its own length: Feb is 28 days, Mar 31).
        """
        cut = self.period.end if self.shortened else None
        total = Decimal(0)
        with exact_arithmetic():
            for start, end in self.windows(frequency):
                total += _paid_fraction(start, end, self.trial_end, cut)
        return total

    def billable_fraction(self) -> Decimal:
        """The share of the full period the customer pays for: not in the trial, not after the end.

        Scales quantity commitments (a component's `watermark`), which are per period
        rather than per charge window.
        """
        with exact_arithmetic():
            return _paid_fraction(self.period.start, self.full_end, self.trial_end, self.period.end)

    @property
    def entirely_in_trial(self) -> bool:
        """The period ends by the trial end: all of its usage is free, whatever was reported."""
        return self.trial_end is not None and self.period.end <= self.trial_end

    @property
    def first_after_trial(self) -> bool:
        return is_first_period_after_trial(self.period, self.trial_end)


def _paid_fraction(start: datetime, end: datetime, free_until: datetime | None, cut: datetime | None) -> Decimal:
    paid_start = max(start, free_until) if free_until is not None else start
    paid_end = min(end, cut) if cut is not None else end
    if paid_end <= paid_start:
        return Decimal(0)
    if paid_start == start and paid_end == end:
        return Decimal(1)
    return elapsed_seconds(paid_start, paid_end) / elapsed_seconds(start, end)


def coverage_for(
    plan: PricePlan, period: Period, full_period_seconds: int, subscription: Subscription | None,
) -> Coverage:
    """The coverage of `period` for `subscription` on `plan`.

    Without a subscription (callers that rate bare usage), there is no trial and the
    anchor is inferred by stepping back whole periods from `period.start`: exact for
    every charge at the plan's own frequency, and for the others unless the anchor's day
    was clamped (Jan 31 -> Feb 28). The rater always passes the subscription.
    """
    if subscription is None:
        months = MONTHS_PER_PERIOD[plan.period] * period.index
        return Coverage(
            anchor=add_months(period.start, -months),
            plan_period=plan.period,
            period=period,
            full_end=period.start + timedelta(seconds=full_period_seconds),
        )
    anchor = subscription.start_time
    return Coverage(
        anchor=anchor,
        plan_period=plan.period,
        period=period,
        full_end=period_at_index(anchor, plan.period, period.index).end,
        trial_end=trial_end(anchor, plan.trial),
    )
