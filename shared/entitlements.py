"""Entitlements: what a subscription may use (plan features, add-ons, limits) and how much it has.

Pure: the caller supplies the period's usage per meter. A plan `limits` entry
`{feature, limit}` is measured by the metered component whose `meter_name` equals the
feature's `name` exactly (case-sensitive; the only link the seed gives between a feature
and a meter). A limit whose feature no component meters has no usage here: it is an
entitlement to enforce elsewhere, never "exceeded" by this module.

A limit is exceeded when usage is strictly above it (at the limit is still allowed). The
usage compared is the meter's raw period total as the caller passes it, trial included:
a limit bounds what the customer uses, not what they are billed. Add-ons do not raise
plan limits; the seed gives no rule for how they would.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from shared.add_ons import subscribed_add_ons
from shared.models import Feature, PricePlan, Subscription
from shared.periods import Period

EntitlementKind = Literal["feature", "add_on", "limit"]


@dataclass(frozen=True)
class Entitlement:
    kind: EntitlementKind
    feature: str
    display_name: str
    quantity: Decimal | None = None  # add-ons: the units held
    limit: Decimal | None = None  # limits: the most allowed per period
    usage: Decimal | None = None  # limits metered by a component: this period's usage

    @property
    def exceeded(self) -> bool:
        return self.kind == "limit" and self.usage is not None and self.limit is not None and self.usage > self.limit


def _display(feature: Feature) -> str:
    return feature.display_name or feature.name


def entitlements(plan: PricePlan, subscription: Subscription, usage: Mapping[str, Decimal]) -> list[Entitlement]:
    """Plan features, then the subscription's add-ons, then plan limits with current usage.

    Add-on quantities are the billed ones (`add_ons.subscribed_add_ons`: quantity 1 when
    `quantity_enabled` is false, capped by the add-on's limit), so what a customer is
    entitled to and what they pay for never disagree. A metered limit with no usage
    reported reads usage 0.
    """
    items = [Entitlement("feature", f.name, _display(f)) for f in plan.features or []]
    items += [
        Entitlement("add_on", add_on.feature.name, _display(add_on.feature), quantity=quantity)
        for add_on, quantity in subscribed_add_ons(plan, subscription)
    ]
    metered = {component.meter_name for component in plan.metered_components}
    for entry in plan.limits or []:
        name = entry.feature.name
        used = usage.get(name, Decimal(0)) if name in metered else None
        items.append(Entitlement("limit", name, _display(entry.feature), limit=entry.limit, usage=used))
    return items


def exceeded_limits(plan: PricePlan, subscription: Subscription, usage: Mapping[str, Decimal]) -> list[Entitlement]:
    """The limits whose metered usage is above the limit, in the plan's order."""
    return [item for item in entitlements(plan, subscription, usage) if item.exceeded]


LimitExceededKey = tuple[str, str, datetime]  # customer, feature, period start


@dataclass(frozen=True)
class LimitExceeded:
    """One limit-exceeded fact: at most one per customer, feature and period."""

    customer_name: str
    feature: str
    period_start: datetime
    period_end: datetime
    limit: Decimal
    usage: Decimal

    @property
    def key(self) -> LimitExceededKey:
        return (self.customer_name, self.feature, self.period_start)


def limit_exceeded_events(
    plan: PricePlan,
    subscription: Subscription,
    period: Period,
    usage: Mapping[str, Decimal],
    already_reported: Collection[LimitExceededKey] = (),
) -> list[LimitExceeded]:
    """Limits newly exceeded in `period`: those exceeded whose key is not yet reported.

    The first crossing in a period is the one to report; the caller remembers the keys
    it published and passes them back, which makes repeated evaluation (every batch, a
    replay) publish each crossing once per period.
    """
    events = []
    for item in exceeded_limits(plan, subscription, usage):
        if item.limit is None or item.usage is None:  # never: `exceeded` requires both
            continue
        event = LimitExceeded(
            subscription.customer_name, item.feature, period.start, period.end, item.limit, item.usage,
        )
        if event.key not in already_reported:
            events.append(event)
    return events
