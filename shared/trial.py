"""Trials (semantics.md, Rating): a free window at the start of a subscription, and a credit.

`plan.trial` = {time_length, time_unit_name (day | week | month), credit}. The window is
`[subscription start, start + time_length units)`; inside it usage is not billed and
time-based charges are pro-rated away (see `shared/coverage.py`). The credit is a
negative `trial_credit` line on the first invoice after the trial: the first period whose
end lies after the trial end.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from shared.models import Trial
from shared.models.invoice import InvoiceLine
from shared.money import round_cents
from shared.periods import Period, add_months

TRIAL_UNITS = ("day", "week", "month")
TRIAL_CREDIT_DESCRIPTION = "Trial credit"


def trial_end(start: datetime, trial: Trial | None) -> datetime | None:
    """The end of the trial window that begins at `start`, or None without a trial.

    Months step like periods do (from Jan 31, one month ends on Feb 28/29), so a
    one-month trial on a monthly plan is exactly the first period. A trial with a credit
    but no length is a zero-length window: nothing is free, and the credit lands on the
    first invoice (a sign-up credit). Units other than day/week/month are refused by
    `plan_rules`; meeting one here is a programming error.
    """
    if trial is None:
        return None
    length = trial.time_length or 0
    if length <= 0:
        return start if trial.credit else None
    unit = trial.time_unit_name
    if unit == "day":
        return start + timedelta(days=length)
    if unit == "week":
        return start + timedelta(weeks=length)
    if unit == "month":
        return add_months(start, length)
    raise ValueError(f"trial time_unit_name must be one of {', '.join(TRIAL_UNITS)}, not {unit!r}")


def is_first_period_after_trial(period: Period, ends: datetime | None) -> bool:
    """True for the one period whose end is the first to lie after the trial end.

    Periods are contiguous, so that is the period with `start <= trial end < end`. A
    trial that ends exactly on a period boundary therefore credits the period that
    begins there, and a subscription that ends before its trial does never gets the credit
    (no period ends after the trial).
    """
    return ends is not None and period.start <= ends < period.end


def trial_credit_lines(trial: Trial | None, subtotal: Decimal) -> list[InvoiceLine]:
    """The negative `trial_credit` line, capped so the invoice never goes below zero.

    `subtotal` is the sum of the invoice's rounded lines, minimum-charge true-up
    included: the credit is applied last, to what the customer would otherwise pay. A
    credit larger than that subtotal is used only up to it; the rest lapses (it is not
    carried to later invoices: the contract says the credit is on *the* first invoice).
    No line is written when nothing is credited.
    """
    if trial is None or not trial.credit:
        return []
    applied = min(round_cents(trial.credit), subtotal)
    if applied <= 0:
        return []
    return [InvoiceLine(
        type="trial_credit", description=TRIAL_CREDIT_DESCRIPTION, quantity=Decimal(1), amount=-applied,
    )]
