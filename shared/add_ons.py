"""Add-ons (semantics.md, Rating): `price x quantity` per `price_frequency`, or once.

A subscription lists `[{feature, quantity}]`; each entry is priced by the plan's add-on of
that feature:
- recurring (`single_use: false`): `price x quantity` per `price_frequency` (default: the
  plan period), with exactly the base price's frequency and pro-rating rules
  (`shared/coverage.py`): n times in a longer period, only in the first period of each
  cycle when the frequency is longer, free during the trial, pro-rated by seconds in a
  short final period;
- `single_use: true`: `price x quantity` once, in the first period of the subscription,
  never pro-rated (it buys a thing, not time);
- `quantity_enabled: false`: the quantity is forced to 1;
- `immediately_charge: true`: the add-on's first-period charge goes on an immediate
  invoice of its own at subscription start (`immediate_charge_lines`) instead of the first
  period invoice; later periods charge it on the period invoice as usual.
"""

from __future__ import annotations

from decimal import Decimal

from shared.coverage import Coverage, coverage_for
from shared.models import AddOn, PricePlan, Subscription
from shared.models.invoice import InvoiceLine
from shared.money import exact_arithmetic, round_cents
from shared.periods import period_at_index


def add_on_description(add_on: AddOn) -> str:
    return add_on.feature.display_name or add_on.feature.name


def subscribed_add_ons(plan: PricePlan, subscription: Subscription) -> list[tuple[AddOn, Decimal]]:
    """The subscription's add-ons with the quantity to bill, in the plan's order.

    - Entries naming the same feature are added together (one line per feature, so a
      correction can tell the lines apart).
    - `quantity_enabled: false` forces the quantity to 1.
    - An add-on's `limit` caps the quantity (the most of it one subscription can hold).
    - A feature the plan does not offer is ignored: the catalog refuses such a
      subscription, so it can only mean the plan changed since; billing for a price that
      no longer exists would be a guess.
    The plan's order is used, not the subscription's, so the lines of every invoice of a
    plan come out in the same order.
    """
    wanted: dict[str, int] = {}
    for entry in subscription.add_ons:
        wanted[entry.feature] = wanted.get(entry.feature, 0) + entry.quantity
    billed: list[tuple[AddOn, Decimal]] = []
    seen: set[str] = set()
    for add_on in plan.add_ons or []:
        name = add_on.feature.name
        if name not in wanted or name in seen:
            continue
        seen.add(name)
        quantity = Decimal(wanted[name]) if add_on.quantity_enabled else Decimal(1)
        if add_on.limit is not None:
            quantity = min(quantity, add_on.limit)
        if quantity > 0:
            billed.append((add_on, quantity))
    return billed


def is_immediate(add_on: AddOn, coverage: Coverage) -> bool:
    """Charged on the immediate invoice: an `immediately_charge` add-on's first-period charge."""
    return bool(add_on.immediately_charge) and coverage.period.index == 0


def add_on_lines(
    plan: PricePlan, subscription: Subscription, coverage: Coverage, *, immediate: bool = False,
) -> list[InvoiceLine]:
    """`add_on` lines of one period: the period invoice's (default) or the immediate invoice's.

    With `immediate=False` the add-ons that `immediate_charge_lines` bills are left out,
    so they are never charged twice. A line's quantity is add-on units x charges due
    (x the paid fraction), so `amount = price x quantity` as for the base price: 3 seats
    of a monthly add-on on an annual plan read quantity 36. A recurring add-on gets a
    line whenever a charge falls due, even one the trial brings to 0.00, so the invoice
    shows it was waived.
    """
    lines: list[InvoiceLine] = []
    for add_on, units in subscribed_add_ons(plan, subscription):
        if is_immediate(add_on, coverage) != immediate:
            continue
        if add_on.single_use:
            if coverage.period.index != 0:
                continue
            quantity = units
        else:
            if not coverage.charge_due(add_on.price_frequency):
                continue
            quantity = units * coverage.charge_quantity(add_on.price_frequency)
        lines.append(
            InvoiceLine(
                type="add_on",
                description=add_on_description(add_on),
                quantity=quantity,
                amount=round_cents(add_on.price * quantity),
            )
        )
    return lines


def immediate_charge_lines(plan: PricePlan, subscription: Subscription) -> list[InvoiceLine]:
    """The lines of the invoice issued at subscription start for `immediately_charge` add-ons.

    Each is what the first period invoice would otherwise have charged for it (the same
    trial and short-period rules), so moving a charge forward never changes its amount,
    and `rate` leaves these add-ons out of the first period invoice. Empty when the
    subscription has no such add-on.
    """
    with exact_arithmetic():
        anchor = subscription.start_time
        period = period_at_index(anchor, plan.period, 0, subscription.end_time)
        full = period_at_index(anchor, plan.period, 0)
        coverage = coverage_for(plan, period, full.seconds, subscription)
        return add_on_lines(plan, subscription, coverage, immediate=True)
