"""PeriodTotals + catalog + ledger -> the invoice (or correction) to publish, if any."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, localcontext

from services.rater.ledger import Ledger
from shared.catalog import Catalog
from shared.models.invoice import Invoice, PeriodTotals, invoice_id
from shared.periods import period_at_index
from shared.rating import PRECISION, RatingInput, invoice_total, rate


class UnknownPlan(Exception):
    pass


def invoice_for(event: PeriodTotals, catalog: Catalog, ledger: Ledger, now: datetime) -> Invoice | None:
    plan = catalog.price_plans.get(event.price_plan_name)
    if plan is None:
        raise UnknownPlan(event.price_plan_name)
    full = period_at_index(event.subscription_start, plan.period, event.period_index)
    period = period_at_index(event.subscription_start, plan.period, event.period_index, event.period_end)
    with localcontext() as ctx:
        ctx.prec = PRECISION  # series totals are Decimal(38, 12): sum them without rounding
        usage = {meter: sum(series.values(), Decimal(0)) for meter, series in event.totals.items()}
    lines = rate(
        RatingInput(plan=plan, period=period, full_period_seconds=full.seconds, usage=usage, meters=catalog.meters)
    )
    key = (event.customer_name, plan.name, event.period_start, event.period_end)
    revision = ledger.next_revision(key)
    if revision > 0:
        with localcontext() as ctx:
            ctx.prec = PRECISION
            lines = ledger.difference(key, lines)
        if not lines:
            return None  # a replay, a re-run or a late duplicate: nothing changed
    return Invoice(
        invoice_id=invoice_id(event.customer_name, plan.name, event.period_start, event.period_end, revision),
        revision=revision,
        kind="invoice" if revision == 0 else "correction",
        customer_name=event.customer_name,
        price_plan_name=plan.name,
        period_start=event.period_start,
        period_end=event.period_end,
        lines=lines,
        total=invoice_total(lines),
        issued_at=now,
    )
