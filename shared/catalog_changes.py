"""Rules only a change to an existing catalog can break, and how entities are addressed.

`shared.catalog.entity_problems` judges an entity joining a catalog; these judge taking
one away or replacing it: a meter a plan prices, a plan a subscription uses, a customer
with subscriptions may not be deleted, and a replaced plan must keep offering every
add-on its subscriptions take. Pure: the HTTP API maps the answers to status codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from shared.catalog import Catalog, Entity, Problem
from shared.models import PricePlan, Subscription
from shared.models.json_types import UtcDateTime

MAX_LISTED = 10  # dependents named in a reason; the rest are counted


def key_of(entity: Entity) -> str:
    """The entity's catalog key: its name, or customer@start for a subscription."""
    return entity.key if isinstance(entity, Subscription) else entity.name


def table(catalog: Catalog, kind: str) -> Mapping[str, Entity]:
    """The catalog's entities of one kind ("customers", "meters", ...), by key."""
    tables: dict[str, Mapping[str, Entity]] = {
        "customers": catalog.customers,
        "meters": catalog.meters,
        "price_plans": catalog.price_plans,
        "subscriptions": catalog.subscriptions,
    }
    return tables[kind]


_INSTANT: TypeAdapter[Any] = TypeAdapter(UtcDateTime)


def subscription_key(subscription_id: str) -> str | None:
    """The catalog key of `customer@start`, whatever RFC 3339 spelling the start has,
    or None when the id is not of that form."""
    customer, at, start = subscription_id.rpartition("@")
    if not at or not customer:
        return None
    try:
        instant = _INSTANT.validate_python(start)
    except ValidationError:
        return None
    return f"{customer}@{instant.isoformat()}"


def dropped_add_ons(catalog: Catalog, entity: Entity) -> list[Problem]:
    """What replacing a plan by `entity` would break: an add-on a subscription takes
    that the plan would no longer offer (nothing, for any other kind)."""
    if not isinstance(entity, PricePlan):
        return []
    offered = {a.feature.name for a in entity.add_ons or []}
    return [
        ("add_ons", f"subscription {sub.key!r} takes add-on {add_on.feature!r}, which the plan would no longer offer")
        for sub in sorted(catalog.subscriptions.values(), key=lambda s: s.key)
        if sub.price_plan_name == entity.name
        for add_on in sub.add_ons
        if add_on.feature not in offered
    ]


def in_use(catalog: Catalog, kind: str, name: str) -> str | None:
    """Why the entity may not be deleted (what refers to it), or None."""
    if kind == "meters":
        noun, remedy = "price plan", "delete or change"
        users = sorted(
            plan.name for plan in list(catalog.price_plans.values())
            if any(c.meter_name == name for c in plan.metered_components)
        )
    elif kind == "price_plans":
        noun, remedy = "subscription", "delete or change"
        users = sorted(s.key for s in list(catalog.subscriptions.values()) if s.price_plan_name == name)
    elif kind == "customers":
        # Ended subscriptions count: they are the customer's billing history.
        noun, remedy = "subscription", "delete"
        users = [s.key for s in catalog.subscriptions_of(name)]
    else:
        return None
    if not users:
        return None
    listed = ", ".join(repr(u) for u in users[:MAX_LISTED])
    more = f" and {len(users) - MAX_LISTED} more" if len(users) > MAX_LISTED else ""
    plural = len(users) > 1
    return f"is used by {noun}{'s' if plural else ''} {listed}{more}; {remedy} {'them' if plural else 'it'} first"
