"""PeriodTotals + catalog + ledger -> the invoice (or correction) to publish, if any.

Also the immediate invoice of a new subscription's `immediately_charge` add-ons
(`immediate_invoice_for`), which goes through the same ledger so it is issued once.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from services.rater.ledger import Ledger, PeriodKey
from shared.add_ons import immediate_charge_lines
from shared.catalog import Catalog
from shared.models import PricePlan, Subscription
from shared.models.invoice import Invoice, InvoiceLine, PeriodTotals, invoice_id
from shared.money import PRECISION, exact_arithmetic
from shared.periods import Period, period_at_index
from shared.rating import RatingInput, invoice_total, rate

__all__ = ["PRECISION", "UnknownPlan", "immediate_invoice_for", "invoice_for", "subscription_for"]


class UnknownPlan(Exception):
    pass


def subscription_for(event: PeriodTotals, catalog: Catalog) -> Subscription:
    """The subscription the period belongs to (key: customer @ start).

    If the catalog no longer holds it (deleted after its periods closed), the period is
    still rated, as a subscription with the event's customer, plan and start and no
    add-ons: the trial (a property of the plan and the start) still applies, and the
    period end already comes cut from the event. Refusing would stop the rater on a
    record it can never rate.
    """
    found = catalog.subscriptions.get(f"{event.customer_name}@{event.subscription_start.isoformat()}")
    if found is not None:
        return found
    return Subscription(
        customer_name=event.customer_name, price_plan_name=event.price_plan_name,
        start_time=event.subscription_start,
    )


def _summed(totals: dict[str, dict[str, Decimal]]) -> dict[str, Decimal]:
    # Series totals have up to 64 integer and 12 fractional digits: sum them at full precision, never rounded.
    with exact_arithmetic():
        return {meter: sum(series.values(), Decimal(0)) for meter, series in totals.items()}


def invoice_for(event: PeriodTotals, catalog: Catalog, ledger: Ledger, now: datetime) -> Invoice | None:
    plan = catalog.price_plans.get(event.price_plan_name)
    if plan is None:
        raise UnknownPlan(event.price_plan_name)
    full = period_at_index(event.subscription_start, plan.period, event.period_index)
    # = period_at_index(..., end_time=event.period_end): the same period, cut at the event's end.
    period = full if full.end <= event.period_end else Period(full.start, event.period_end, full.index)
    lines = rate(
        RatingInput(
            plan=plan, period=period, full_period_seconds=full.seconds,
            usage=_summed(event.totals), meters=catalog.meters,
            subscription=subscription_for(event, catalog), usage_in_trial=_summed(event.trial_totals),
        )
    )
    key = (event.customer_name, plan.name, event.period_start, event.period_end)
    return _issue(key, lines, ledger, now)


def immediate_invoice_for(plan: PricePlan, subscription: Subscription, ledger: Ledger, now: datetime) -> Invoice | None:
    """The invoice issued at subscription start for its `immediately_charge` add-ons, if any.

    Its period is the instant of the start (`period_start == period_end ==
    start_time`), which gives it an identity of its own, apart from the first period's
    invoice: same subscription, same id, and the ledger makes a second call publish
    nothing (or a correction, if the subscription's add-ons changed meanwhile).
    """
    lines = immediate_charge_lines(plan, subscription)
    if not lines:
        return None
    start = subscription.start_time
    return _issue((subscription.customer_name, plan.name, start, start), lines, ledger, now)


def _issue(key: PeriodKey, lines: list[InvoiceLine], ledger: Ledger, now: datetime) -> Invoice | None:
    customer, plan_name, start, end = key
    revision = ledger.next_revision(key)
    if revision > 0:
        with exact_arithmetic():
            lines = ledger.difference(key, lines)
        if not lines:
            return None  # a replay, a re-run or a late duplicate: nothing changed
    return Invoice(
        invoice_id=invoice_id(customer, plan_name, start, end, revision),
        revision=revision,
        kind="invoice" if revision == 0 else "correction",
        customer_name=customer,
        price_plan_name=plan_name,
        period_start=start,
        period_end=end,
        lines=lines,
        total=invoice_total(lines),
        issued_at=now,
    )
