"""Rating: (plan, subscription period, usage totals) -> invoice lines. Pure and exact.

Every line is rounded to cents once, half up; the invoice total is the sum of the
rounded lines, so the total is always explainable line by line.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Mapping

from shared.models import Meter, PricePlan
from shared.models.invoice import InvoiceLine
from shared.models.price_plan import MeteredComponent
from shared.money import round_cents
from shared.periods import MONTHS_PER_PERIOD, Period
from shared.pricing import price

SECONDS_PER_TIME_UNIT = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
# Enough digits that 38-digit quantities times 12-decimal prices never round.
PRECISION = 80


@dataclass(frozen=True)
class RatingInput:
    plan: PricePlan
    period: Period
    full_period_seconds: int  # the unshortened period's length, for pro-rating
    usage: Mapping[str, Decimal]  # meter name -> period quantity (series summed)
    meters: Mapping[str, Meter]


def rate(inputs: RatingInput) -> list[InvoiceLine]:
    with localcontext() as ctx:
        ctx.prec = PRECISION
        lines = _base_price_lines(inputs)
        lines += [_usage_line(inputs, c) for c in inputs.plan.metered_components]
        lines += _minimum_charge_lines(inputs.plan, lines)
    return lines


def invoice_total(lines: list[InvoiceLine]) -> Decimal:
    return sum((line.amount for line in lines), Decimal("0.00"))


def charges_in_period(plan_period: str, frequency: str | None, period_index: int) -> int:
    """How many times a per-`frequency` charge falls in one plan period.

    An annual plan with a monthly fee charges it 12 times; a monthly plan with an
    annual fee charges it in the first period of each 12-month cycle and not otherwise.
    """
    plan_months = MONTHS_PER_PERIOD[plan_period]
    charge_months = MONTHS_PER_PERIOD[frequency or plan_period]
    if charge_months <= plan_months:
        return plan_months // charge_months
    periods_per_charge = charge_months // plan_months
    return 1 if period_index % periods_per_charge == 0 else 0


def _prorate(inputs: RatingInput) -> Decimal:
    if inputs.period.seconds >= inputs.full_period_seconds:
        return Decimal(1)
    return Decimal(inputs.period.seconds) / Decimal(inputs.full_period_seconds)


def _base_price_lines(inputs: RatingInput) -> list[InvoiceLine]:
    plan = inputs.plan
    if not plan.base_price:
        return []
    count = charges_in_period(plan.period, plan.base_price_frequency, inputs.period.index)
    if count == 0:
        return []
    quantity = Decimal(count) * _prorate(inputs)
    return [
        InvoiceLine(
            type="base_price",
            description=plan.base_price_description or "Base price",
            quantity=quantity,
            amount=round_cents(plan.base_price * quantity),
        )
    ]


def billable_quantity(component: MeteredComponent, raw: Decimal, meter: Meter | None) -> Decimal:
    quantity = raw
    if meter is not None and meter.meter_type == "GAUGE" and meter.aggregation == "SUM":
        unit = component.price_scheme.time_unit_name or "hour"
        quantity = quantity / SECONDS_PER_TIME_UNIT[unit]
    if component.limit is not None:
        quantity = min(quantity, component.limit)
    if component.watermark is not None:
        quantity = max(quantity, component.watermark)
    return quantity


def _usage_line(inputs: RatingInput, component: MeteredComponent) -> InvoiceLine:
    meter = inputs.meters.get(component.meter_name)
    quantity = billable_quantity(component, inputs.usage.get(component.meter_name, Decimal(0)), meter)
    scheme = component.price_scheme
    tiers = [(t.price or Decimal(0), t.cap) for t in scheme.prices or []]
    amount = price(scheme.scheme_type or "FLAT", quantity, tiers)
    if component.minimum_charge is not None:
        amount = max(amount, component.minimum_charge)
    return InvoiceLine(
        type="usage",
        description=component.display_name or component.meter_display_name,
        meter_name=component.meter_name,
        quantity=quantity,
        amount=round_cents(amount),
    )


def _minimum_charge_lines(plan: PricePlan, lines: list[InvoiceLine]) -> list[InvoiceLine]:
    if not plan.minimum_charge:
        return []
    subtotal = invoice_total(lines)
    minimum = round_cents(plan.minimum_charge)
    if subtotal >= minimum:
        return []
    return [
        InvoiceLine(
            type="minimum_charge",
            description="Minimum charge true-up",
            quantity=Decimal(1),
            amount=minimum - subtotal,
        )
    ]
