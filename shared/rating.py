"""Rating: (plan, subscription, period, usage totals) -> invoice lines. Pure and exact.

Lines come out in a fixed order: `base_price`, `add_on` (plan order), `usage` (plan
order of the metered components), the plan `minimum_charge` true-up, `trial_credit`.
Every line is rounded to cents once, half up; the invoice total is the sum of the
rounded lines, so the total is always explainable line by line. The plan minimum is
compared with the subtotal of the rounded lines before the trial credit: the minimum is
what the plan is worth, and the credit is then paid out of it.

Time-based charges (base price, recurring add-ons, minimums) follow one rule, described
in `shared/coverage.py`: owed once per window of their frequency, pro-rated by the
seconds of the window that are neither in the trial nor after the subscription's end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from shared.add_ons import add_on_lines
from shared.coverage import Coverage, coverage_for
from shared.models import Meter, PricePlan, Subscription
from shared.models.invoice import InvoiceLine
from shared.models.price_plan import MeteredComponent
from shared.money import PRECISION, exact_arithmetic, round_cents
from shared.periods import MONTHS_PER_PERIOD, Period
from shared.pricing import price
from shared.trial import trial_credit_lines

__all__ = [
    "PRECISION",
    "SECONDS_PER_TIME_UNIT",
    "RatingInput",
    "billable_quantity",
    "charges_in_period",
    "invoice_total",
    "rate",
]

SECONDS_PER_TIME_UNIT = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
MINIMUM_CHARGE_DESCRIPTION = "Minimum charge true-up"


@dataclass(frozen=True)
class RatingInput:
    """Everything one period's invoice depends on.

    - `usage`: meter name -> the period quantity (series summed), as aggregated.
    - `usage_in_trial`: meter name -> the part of `usage` the trial leaves unbilled,
      subtracted before any pricing (floored at 0). For additive aggregations (SUM,
      COUNT, a GAUGE's SUM) it is the total of the in-trial slice of the period; for
      MAX/MIN/UNIQUE_COUNT it is the period quantity less the quantity of the post-trial
      slice alone. A period that ends by the trial end is free whatever this says.
    - `subscription`: the anchor of the charge windows, the trial start, the add-ons.
      Without it nothing of those applies (bare usage rating; see `coverage_for`).
    - `full_period_seconds`: the unshortened period's length; only used without a
      subscription (with one, the full period is recomputed from the anchor).
    """

    plan: PricePlan
    period: Period
    full_period_seconds: int
    usage: Mapping[str, Decimal]
    meters: Mapping[str, Meter]
    subscription: Subscription | None = None
    usage_in_trial: Mapping[str, Decimal] = field(default_factory=dict)


def rate(inputs: RatingInput) -> list[InvoiceLine]:
    """The period invoice's lines, in the contract's order, each rounded once."""
    with exact_arithmetic():
        coverage = coverage_for(inputs.plan, inputs.period, inputs.full_period_seconds, inputs.subscription)
        lines = base_price_lines(inputs.plan, coverage)
        if inputs.subscription is not None:
            lines += add_on_lines(inputs.plan, inputs.subscription, coverage)
        lines += [usage_line(inputs, component, coverage) for component in inputs.plan.metered_components]
        lines += minimum_charge_lines(inputs.plan, invoice_total(lines), coverage)
        if coverage.first_after_trial:
            lines += trial_credit_lines(inputs.plan.trial, invoice_total(lines))
    return lines


def invoice_total(lines: list[InvoiceLine]) -> Decimal:
    """The sum of the (already rounded) lines: never rounded again."""
    with exact_arithmetic():
        return sum((line.amount for line in lines), Decimal("0.00"))


def charges_in_period(plan_period: str, frequency: str | None, period_index: int) -> int:
    """How many times a per-`frequency` charge falls in one full plan period.

    An annual plan with a monthly fee charges it 12 times; a monthly plan with an
    annual fee charges it in the first period of each 12-month cycle and not otherwise.
    (`periods.charge_windows` gives the windows themselves, for pro-rating.)
    """
    plan_months = MONTHS_PER_PERIOD[plan_period]
    charge_months = MONTHS_PER_PERIOD[frequency or plan_period]
    if charge_months <= plan_months:
        return plan_months // charge_months
    periods_per_charge = charge_months // plan_months
    return 1 if period_index % periods_per_charge == 0 else 0


def base_price_lines(plan: PricePlan, coverage: Coverage) -> list[InvoiceLine]:
    """`base_price x charges due` (pro-rated); no line in a period where no charge falls due.

    The quantity is the number of charges (12 for an annual plan with a monthly fee,
    17/31 for a 31-day month whose first 14 days are trial), so `amount = price x quantity`.
    """
    if not plan.base_price or not coverage.charge_due(plan.base_price_frequency):
        return []
    quantity = coverage.charge_quantity(plan.base_price_frequency)
    return [
        InvoiceLine(
            type="base_price",
            description=plan.base_price_description or "Base price",
            quantity=quantity,
            amount=round_cents(plan.base_price * quantity),
        )
    ]


def billable_quantity(
    component: MeteredComponent,
    raw: Decimal,
    meter: Meter | None,
    *,
    in_trial: Decimal = Decimal(0),
    watermark_share: Decimal = Decimal(1),
) -> Decimal:
    """The quantity the price scheme sees (semantics.md, Rating step 1).

    In order: the trial's part is taken off (in the meter's own unit, floored at 0); a
    GAUGE's SUM (level x seconds) becomes level x `time_unit_name` (default hour); the
    `limit` caps it; the `watermark` floors it. The watermark is a per-period commitment,
    so it is scaled by `watermark_share`, the paid fraction of the period: a period
    that is all trial commits to nothing, and a 7-day final period of a 28-day month to a
    quarter. The limit is not scaled: it caps what can be billed, a commitment it is not.
    """
    quantity = max(raw - in_trial, Decimal(0)) if in_trial else raw
    if meter is not None and meter.meter_type == "GAUGE" and meter.aggregation == "SUM":
        unit = component.price_scheme.time_unit_name or "hour"
        quantity = quantity / SECONDS_PER_TIME_UNIT[unit]
    if component.limit is not None:
        quantity = min(quantity, component.limit)
    if component.watermark is not None:
        quantity = max(quantity, component.watermark * watermark_share)
    return quantity


def component_minimum(component: MeteredComponent, coverage: Coverage) -> Decimal | None:
    """The component's floor this period: `minimum_charge` x charges due.

    `minimum_charge_frequency` (default: the period) works as `base_price_frequency`
    does: a monthly minimum on an annual plan is owed 12 times (the year's usage must
    reach 12 x the minimum), and an annual minimum on a monthly plan is a commitment
    applied whole against the first period of each cycle only (no usage is carried
    across periods to true it up at the cycle's end: a period rates from its own
    totals). Trial and a short final period pro-rate it like any time-based charge.
    """
    if component.minimum_charge is None:
        return None
    return component.minimum_charge * coverage.charge_quantity(component.minimum_charge_frequency)


def usage_line(inputs: RatingInput, component: MeteredComponent, coverage: Coverage) -> InvoiceLine:
    meter = inputs.meters.get(component.meter_name)
    raw = inputs.usage.get(component.meter_name, Decimal(0))
    in_trial = raw if coverage.entirely_in_trial else inputs.usage_in_trial.get(component.meter_name, Decimal(0))
    quantity = billable_quantity(
        component, raw, meter, in_trial=in_trial, watermark_share=coverage.billable_fraction()
    )
    scheme = component.price_scheme
    tiers = [(t.price or Decimal(0), t.cap) for t in scheme.prices or []]
    amount = price(scheme.scheme_type or "FLAT", quantity, tiers)
    minimum = component_minimum(component, coverage)
    if minimum is not None:
        amount = max(amount, minimum)
    return InvoiceLine(
        type="usage",
        description=component.display_name or component.meter_display_name,
        meter_name=component.meter_name,
        quantity=quantity,
        amount=round_cents(amount),
    )


def minimum_charge_lines(plan: PricePlan, subtotal: Decimal, coverage: Coverage) -> list[InvoiceLine]:
    """The true-up that brings `subtotal` (rounded lines, before the trial credit) to the plan minimum.

    The minimum is `minimum_charge x charges due` for `minimum_charge_frequency`, by the
    same rules as the component minimum (`component_minimum`), rounded to cents before
    the comparison so the true-up line is an exact difference of cents. Everything on
    the period invoice counts toward it, add-ons included; charges moved to the
    immediate invoice do not.
    """
    if not plan.minimum_charge:
        return []
    minimum = round_cents(plan.minimum_charge * coverage.charge_quantity(plan.minimum_charge_frequency))
    if subtotal >= minimum:
        return []
    return [
        InvoiceLine(
            type="minimum_charge",
            description=MINIMUM_CHARGE_DESCRIPTION,
            quantity=Decimal(1),
            amount=minimum - subtotal,
        )
    ]
