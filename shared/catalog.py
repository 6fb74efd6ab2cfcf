"""The catalog: customers, meters, price plans and subscriptions, and the questions the
pipeline asks of it (which meters does a measurement feed, whose is it, which
subscription covers an instant). Pure data; services keep it current from Kafka.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from shared.errors import field_errors
from shared.models import Customer, Measurement, Meter, PricePlan, Subscription
from shared.plan_rules import plan_problems

Problem = tuple[str, str]

# Order matters: plans reference meters, subscriptions reference customers and plans.
KINDS = ("meters", "price_plans", "customers", "subscriptions")


@dataclass
class Catalog:
    customers: dict[str, Customer] = field(default_factory=dict)
    meters: dict[str, Meter] = field(default_factory=dict)
    price_plans: dict[str, PricePlan] = field(default_factory=dict)
    # keyed by Subscription.key (customer@start)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    _by_mapping: dict[tuple[str, str], str] = field(default_factory=dict)
    _by_event: dict[str, list[Meter]] = field(default_factory=dict)
    # customer -> their subscriptions, latest start first: the order subscription_at reads
    # them in (a customer has at most one subscription starting at an instant). "Which
    # subscription covers this instant" is asked per measurement and per close, so it
    # costs O(own subscriptions). Kept by put and delete, each customer's tuple replaced
    # whole (one step: a reader on another thread sees the old tuple or the new one), so
    # no index over all customers is rebuilt when the catalog changes: such rebuilds, in
    # the services' readers, took half a second or more per change with 100,000 customers.
    # Read-only for everyone else.
    subscriptions_by_customer: dict[str, tuple[Subscription, ...]] = field(
        default_factory=dict, compare=False, repr=False)
    # Grows with every put/delete, so a reader holding derived state (a close schedule)
    # can tell the catalog changed without comparing it.
    revision: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if self.subscriptions and not self.subscriptions_by_customer:
            for sub in self.subscriptions.values():
                self._index_subscription(sub)

    # ---- keeping it current ------------------------------------------------

    def put(self, entity: Customer | Meter | PricePlan | Subscription) -> None:
        if isinstance(entity, Customer):
            previous = self.customers.get(entity.name)
            self.customers[entity.name] = entity
            # The new claims first, then the old ones it dropped: a reader on another
            # thread never finds a pair this customer keeps unclaimed in between.
            pairs = entity.mapping_pairs()
            for pair in pairs:
                self._by_mapping.setdefault(pair, entity.name)
            if previous is not None:
                self._unclaim(previous, keep=set(pairs))
        elif isinstance(entity, Meter):
            self.meters[entity.name] = entity
            self._reindex_events()
        elif isinstance(entity, PricePlan):
            self.price_plans[entity.name] = entity
        else:
            # The key once: it is formatted on every read, and both indexes then hold one
            # string instead of two (about 90 bytes a subscription).
            key = entity.key
            replaced = self.subscriptions.get(key)
            self.subscriptions[key] = entity
            self._index_subscription(entity, replaced)
        self.revision += 1

    def delete(self, kind: str, key: str) -> None:
        if kind == "customers":
            self._unindex_customer(key)
        elif kind == "subscriptions":
            self._unindex_subscription(key)
        getattr(self, kind).pop(key, None)
        if kind == "meters":
            self._reindex_events()
        self.revision += 1

    def _index_subscription(self, sub: Subscription, replaced: Subscription | None = None) -> None:
        # One assignment, the replaced subscription out and the new one in: between two,
        # a reader on another thread (a measurement being folded) would find the customer
        # without a subscription for that instant.
        own = [s for s in self.subscriptions_by_customer.get(sub.customer_name, ()) if s is not replaced]
        own.append(sub)
        self.subscriptions_by_customer[sub.customer_name] = tuple(
            sorted(own, key=lambda s: s.start_time, reverse=True))

    def _unindex_subscription(self, key: str) -> None:
        old = self.subscriptions.get(key)
        if old is None:
            return
        # The tuple holds the very object the subscriptions dict holds under `key`.
        own = tuple(s for s in self.subscriptions_by_customer.get(old.customer_name, ()) if s is not old)
        if own:
            self.subscriptions_by_customer[old.customer_name] = own
        else:
            self.subscriptions_by_customer.pop(old.customer_name, None)

    def _unindex_customer(self, name: str) -> None:
        old = self.customers.get(name)
        if old is not None:
            self._unclaim(old, keep=set())

    def _unclaim(self, customer: Customer, keep: set[tuple[str, str]]) -> None:
        for pair in customer.mapping_pairs():
            if pair not in keep and self._by_mapping.get(pair) == customer.name:
                del self._by_mapping[pair]

    def _reindex_events(self) -> None:
        # Built aside and swapped in: a reader on another thread sees the old index or the new.
        by_event: dict[str, list[Meter]] = {}
        for meter in self.meters.values():
            if meter.event_name is not None:
                by_event.setdefault(meter.event_name, []).append(meter)
        self._by_event = by_event

    def mapping_owner(self, label: str, value: str) -> str | None:
        return self._by_mapping.get((label, value))

    def copy(self) -> Catalog:
        """An independent copy (entities are immutable or treated so; containers are new)."""
        return Catalog(
            customers=dict(self.customers), meters=dict(self.meters), price_plans=dict(self.price_plans),
            subscriptions=dict(self.subscriptions), _by_mapping=dict(self._by_mapping),
            _by_event={k: list(v) for k, v in self._by_event.items()},
            subscriptions_by_customer=dict(self.subscriptions_by_customer),
        )

    # ---- questions ---------------------------------------------------------

    def customer_for(self, measurement: Measurement) -> str | None:
        if measurement.customer_name is not None:
            name = measurement.customer_name
            return name if name in self.customers else None
        for label, value in measurement.labels.items():
            owner = self._by_mapping.get((label, value))
            if owner is not None:
                return owner
        return None

    def meters_for(self, measurement: Measurement) -> list[Meter]:
        if measurement.meter_name is not None:
            meter = self.meters.get(measurement.meter_name)
            return [meter] if meter is not None else []
        candidates = self._by_event.get(measurement.event_name or "", [])
        return [
            m
            for m in candidates
            if all(measurement.labels.get(k) == v for k, v in m.event_label_filter.items())
        ]

    def subscriptions_of(self, customer_name: str) -> list[Subscription]:
        """A customer's subscriptions by start, earliest first."""
        return list(reversed(self.subscriptions_by_customer.get(customer_name, ())))

    def subscription_at(self, customer_name: str, at: datetime) -> Subscription | None:
        """The subscription covering `at`: of those that do, the one that started last."""
        for sub in self.subscriptions_by_customer.get(customer_name, ()):
            if sub.start_time <= at and (sub.end_time is None or at < sub.end_time):
                return sub
        return None


# ---- building and checking a whole catalog ---------------------------------

Entity = Customer | Meter | PricePlan | Subscription

MODELS: dict[str, type[Customer] | type[Meter] | type[PricePlan] | type[Subscription]] = {
    "customers": Customer,
    "meters": Meter,
    "price_plans": PricePlan,
    "subscriptions": Subscription,
}


def pydantic_problems(prefix: str, error: ValidationError) -> list[Problem]:
    return field_errors(error, prefix)


def parse_catalog(document: dict[str, Any]) -> tuple[Catalog, list[Problem]]:
    """Validate a whole catalog document ({kind: [entity, ...]}); report every problem."""
    catalog = Catalog()
    _, problems = apply_document(catalog, document)
    return catalog, problems


def apply_document(catalog: Catalog, document: dict[str, Any]) -> tuple[list[tuple[str, str, Entity]], list[Problem]]:
    """Judge a document's entities against `catalog` (changed in place; pass a copy).

    Returns the document's own entities as (kind, key, entity) changes, in reference
    order, and every problem; a name given twice in one document is a problem too.
    """
    problems: list[Problem] = []
    changes: list[tuple[str, str, Entity]] = []
    seen: set[tuple[str, str]] = set()
    unknown = set(document) - set(KINDS)
    for kind in sorted(unknown):
        problems.append((kind, f"unknown section; expected one of {', '.join(KINDS)}"))
    for kind in KINDS:
        items = document.get(kind) or []
        if not isinstance(items, list):
            problems.append((kind, "must be a list"))
            continue
        for index, raw in enumerate(items):
            try:
                entity = MODELS[kind].model_validate(raw)
            except ValidationError as error:
                problems.extend(pydantic_problems(f"{kind}[{index}]", error))
                continue
            key = entity.key if isinstance(entity, Subscription) else entity.name
            if (kind, key) in seen:
                problems.append((f"{kind}[{index}]", f"{key!r} appears more than once in this document"))
                continue
            seen.add((kind, key))
            found = entity_problems(catalog, entity)
            problems.extend((f"{kind}[{index}].{path}", reason) for path, reason in found)
            catalog.put(entity)
            changes.append((kind, key, entity))
    return changes, problems


def entity_problems(
    catalog: Catalog, entity: Customer | Meter | PricePlan | Subscription
) -> list[Problem]:
    """Rules that relate an entity to the catalog it is joining."""
    if isinstance(entity, Customer):
        return _customer_problems(catalog, entity)
    if isinstance(entity, Meter):
        return []
    if isinstance(entity, PricePlan):
        # The name is the plan's key (catalog topic, subscriptions, the HTTP API), so it
        # follows the customer's name rule; plan_rules.py covers only ratability.
        problems = _name_problems(entity.name) + plan_problems(entity)
        for index, component in enumerate(entity.metered_components):
            if component.meter_name not in catalog.meters:
                problems.append(
                    (f"metered_components[{index}].meter_name", "names no known meter")
                )
        return problems
    return _subscription_problems(catalog, entity)


def _name_problems(name: str) -> list[Problem]:
    problems: list[Problem] = []
    if not name.strip():
        problems.append(("name", "must not be blank"))
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        problems.append(("name", "must not contain control characters"))
    return problems


def _customer_problems(catalog: Catalog, customer: Customer) -> list[Problem]:
    problems = _name_problems(customer.name)
    for index, item in enumerate(customer.measurement_mappings or []):
        for part in ("label", "value"):
            if not isinstance(item.get(part), str) or not item.get(part):
                problems.append((f"measurement_mappings[{index}].{part}", "must be a non-empty string"))
    for label, value in customer.mapping_pairs():
        owner = catalog.mapping_owner(label, value)
        if owner is not None and owner != customer.name:
            problems.append(
                ("measurement_mappings", f"({label}={value}) is already claimed by customer {owner!r}")
            )
    return problems


def _subscription_problems(catalog: Catalog, sub: Subscription) -> list[Problem]:
    problems: list[Problem] = []
    if sub.customer_name not in catalog.customers:
        problems.append(("customer_name", "names no known customer"))
    plan = catalog.price_plans.get(sub.price_plan_name)
    if plan is None:
        problems.append(("price_plan_name", "names no known price plan"))
    for other in catalog.subscriptions_of(sub.customer_name):
        if other.key == sub.key:
            continue
        if _overlaps(sub, other):
            problems.append(("start_time", f"overlaps the subscription starting {other.start_time.isoformat()}"))
    if plan is not None:
        offered = {a.feature.name for a in plan.add_ons or []}
        for index, add_on in enumerate(sub.add_ons):
            if add_on.feature not in offered:
                problems.append((f"add_ons[{index}].feature", "is not an add-on of the plan"))
    return problems


def _overlaps(a: Subscription, b: Subscription) -> bool:
    a_end = a.end_time or datetime.max.replace(tzinfo=a.start_time.tzinfo)
    b_end = b.end_time or datetime.max.replace(tzinfo=b.start_time.tzinfo)
    return a.start_time < b_end and b.start_time < a_end


def entities(catalog: Catalog) -> Iterable[tuple[str, str, Entity]]:
    """Every entity as (kind, key, entity), in an order that satisfies references."""
    for name, meter in catalog.meters.items():
        yield "meters", name, meter
    for name, plan in catalog.price_plans.items():
        yield "price_plans", name, plan
    for name, customer in catalog.customers.items():
        yield "customers", name, customer
    for key, sub in catalog.subscriptions.items():
        yield "subscriptions", key, sub
