"""Watermarks and period close.

A partition's watermark is the greatest event time seen in it less the allowed
lateness; when the partition has been idle for `idle` seconds it also advances with
the wall clock (now less lateness), so quiet customers still close. A period
[start, end) closes once the watermark passes end + grace: its totals are emitted as a
PeriodTotals event. Usage that lands in an already-closed period marks it late, and
the next tick re-emits its totals so the rater can issue a correction.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, MutableMapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.infra.partitioning import customer_partition
from shared.catalog import Catalog
from shared.models import PricePlan, Subscription
from shared.models.invoice import PeriodTotals
from shared.periods import Period, period_at_index
from shared.quantities import totals_with_trial
from shared.series_keys import SEP
from shared.trial import trial_end


@dataclass
class Watermarks:
    lateness: timedelta
    idle: timedelta
    max_event_time: dict[int, datetime] = field(default_factory=dict)
    last_input: dict[int, datetime] = field(default_factory=dict)

    def observe(self, partition: int, event_time: datetime | None, now: datetime) -> None:
        self.last_input[partition] = now
        if event_time is not None:
            current = self.max_event_time.get(partition)
            if current is None or event_time > current:
                self.max_event_time[partition] = event_time

    def watermark(self, partition: int, now: datetime, started: datetime) -> datetime | None:
        seen = self.max_event_time.get(partition)
        mark = seen - self.lateness if seen is not None else None
        last = self.last_input.get(partition, started)
        if now - last >= self.idle:
            wall = now - self.lateness
            mark = wall if mark is None or wall > mark else mark
        return mark


_NONE: dict[str, None] = {}


@dataclass
class SeriesIndex:
    """customer -> series table keys, so a close need not scan the whole table."""

    # A dict of keys, not a set: a set of 5 strings takes 472 bytes, such a dict 232, and a
    # catalog of 100,000 customers has as many of them.
    keys: dict[str, dict[str, None]] = field(default_factory=dict)

    def add(self, table_key: str) -> None:
        customer = table_key.split(SEP, 1)[0]
        keys = self.keys.get(customer)
        if keys is None:
            keys = self.keys[customer] = {}
        keys[table_key] = None

    def rebuild(self, table_keys: Iterable[str]) -> None:
        self.keys = {}
        for key in table_keys:
            self.add(key)

    def of(self, customer: str) -> AbstractSet[str]:
        return self.keys.get(customer, _NONE).keys()


@dataclass
class Closer:
    """Emits PeriodTotals as watermarks pass period ends (and again for late usage).

    A tick must not cost O(subscriptions): it runs every half second and a catalog can
    hold hundreds of thousands. So each subscription sits in its partition's heap under
    the instant its next period may close (period end + grace), and a tick pops only the
    entries the partition's watermark has passed. The heap is a schedule, never the
    truth: a popped entry is judged against the current catalog and close marks (which
    only move forward), so an entry that is early or stale costs one look, never a
    wrong close. Late usage is looked at for the customers `mark_late` named.
    """

    catalog: Callable[[], Catalog]
    series: MutableMapping[str, Any]
    marks: MutableMapping[str, Any]  # customer -> {"closed": {sub: next index}, "late": [[sub, index]]}
    index: SeriesIndex
    watermarks: Watermarks
    grace: timedelta
    partitions: int
    started: datetime
    _schedule: _Schedule | None = field(default=None, init=False, repr=False)
    _late: set[str] = field(default_factory=set, init=False, repr=False)
    _owned: frozenset[int] = field(default=frozenset(), init=False, repr=False)

    def closed_through(self, customer: str, subscription_key: str) -> int:
        mark = self.marks.get(customer)
        if mark is None:
            return 0
        return int(mark["closed"].get(subscription_key, 0))

    def mark_late(self, customer: str, subscription_key: str, index: int) -> None:
        mark = _copy(self.marks.get(customer))
        if [subscription_key, index] not in mark["late"]:
            mark["late"].append([subscription_key, index])
            self.marks[customer] = mark
        self._late.add(customer)

    def tick(self, owned: set[int], now: datetime) -> list[PeriodTotals]:
        catalog = self.catalog()
        schedule = self._current_schedule(catalog)
        if owned - self._owned:
            # Partitions just taken over may carry late marks written by their last owner.
            self._late.update(
                customer for customer, mark in list(self.marks.items())
                if mark and mark.get("late") and customer_partition(customer, self.partitions) in owned
            )
        self._owned = frozenset(owned)
        watermarks = {p: self.watermarks.watermark(p, now, self.started) for p in owned}
        out: list[PeriodTotals] = []
        for partition, watermark in watermarks.items():
            if watermark is None:
                continue
            for subscription in schedule.pop_due(partition, watermark, catalog):
                out.extend(self._advance(catalog, subscription, watermark))
                schedule.push(subscription, self._next_due(catalog, subscription))
        for customer in list(self._late):
            watermark = watermarks.get(customer_partition(customer, self.partitions))
            if watermark is None:
                continue  # not ours (any more), or no watermark yet: keep it for later
            self._late.discard(customer)
            for subscription in catalog.subscriptions_of(customer):
                out.extend(self._advance(catalog, subscription, watermark))
        return out

    def _current_schedule(self, catalog: Catalog) -> _Schedule:
        schedule = self._schedule
        if schedule is None or schedule.plans != catalog.price_plans or schedule.catalog is not catalog:
            # A plan's period or a new catalog changes every due time: start over.
            schedule = _Schedule(catalog, dict(catalog.price_plans), self.partitions)
            self._schedule = schedule
        if schedule.revision != catalog.revision:
            schedule.revision = catalog.revision  # read first: a change meanwhile is seen next tick
            for subscription in schedule.changed(catalog):
                schedule.push(subscription, self._next_due(catalog, subscription))
        return schedule

    def _next_due(self, catalog: Catalog, subscription: Subscription) -> datetime | None:
        """When the subscription's next unclosed period may close; None: never again."""
        plan = catalog.price_plans.get(subscription.price_plan_name)
        if plan is None:
            return None  # a plan that appears later changes the plans: a new schedule
        index = self.closed_through(subscription.customer_name, subscription.key)
        period = period_at_index(subscription.start_time, plan.period, index, subscription.end_time)
        if period.start >= period.end:
            return None
        return period.end + self.grace

    def _advance(self, catalog: Catalog, subscription: Subscription, watermark: datetime) -> list[PeriodTotals]:
        """Close every period of the subscription the watermark has passed; re-emit late ones."""
        plan = catalog.price_plans.get(subscription.price_plan_name)
        if plan is None:
            return []
        customer = subscription.customer_name
        out: list[PeriodTotals] = []
        mark = _copy(self.marks.get(customer))
        next_index = int(mark["closed"].get(subscription.key, 0))
        changed = False
        while True:
            period = period_at_index(subscription.start_time, plan.period, next_index, subscription.end_time)
            if period.start >= period.end or period.end + self.grace > watermark:
                break
            out.append(self._totals(
                subscription.key, subscription.start_time, plan.name, customer, period, "closed", watermark,
            ))
            next_index += 1
            changed = True
        for sub_key, index in mark["late"]:
            if sub_key != subscription.key or index >= next_index:
                continue
            period = period_at_index(subscription.start_time, plan.period, index, subscription.end_time)
            out.append(self._totals(
                sub_key, subscription.start_time, plan.name, customer, period, "late_usage", watermark,
            ))
            changed = True
        if changed:
            mark["closed"][subscription.key] = next_index
            mark["late"] = [pair for pair in mark["late"] if pair[0] != subscription.key]
            self.marks[customer] = mark
        return out

    def _totals(
        self, sub_key: str, anchor: datetime, plan: str, customer: str, period: Period, reason: str, watermark: datetime
    ) -> PeriodTotals:
        catalog = self.catalog()
        price_plan = catalog.price_plans.get(plan)
        ends = trial_end(anchor, price_plan.trial) if price_plan is not None else None
        totals, in_trial = totals_with_trial(
            catalog.meters, self.series, self.index.of(customer), anchor, period.start, period.end, None, ends
        )
        return PeriodTotals(
            customer_name=customer, price_plan_name=plan, subscription_start=anchor,
            period_index=period.index, period_start=period.start, period_end=period.end,
            totals=totals, trial_totals=in_trial, reason=reason,
            watermark=watermark,
        )


@dataclass
class _Schedule:
    """Per partition, a heap of (due instant, sequence, subscription) for one catalog."""

    catalog: Catalog
    plans: dict[str, PricePlan]
    partitions: int
    revision: int = -1
    heaps: dict[int, list[tuple[datetime, int, Subscription]]] = field(default_factory=dict)
    # The subscription objects scheduled, by key: a catalog change is found by identity.
    known: dict[str, Subscription] = field(default_factory=dict)
    sequence: int = 0

    def changed(self, catalog: Catalog) -> list[Subscription]:
        """Subscriptions added or replaced since the last look (removed ones lapse on pop)."""
        current = dict(catalog.subscriptions)  # one atomic copy; the view's thread may write
        fresh = [sub for key, sub in current.items() if self.known.get(key) is not sub]
        self.known = current
        return fresh

    def push(self, subscription: Subscription, due: datetime | None) -> None:
        if due is None:
            return
        self.sequence += 1
        heap = self.heaps.setdefault(customer_partition(subscription.customer_name, self.partitions), [])
        heapq.heappush(heap, (due, self.sequence, subscription))

    def pop_due(self, partition: int, watermark: datetime, catalog: Catalog) -> list[Subscription]:
        heap = self.heaps.get(partition, [])
        due: list[Subscription] = []
        while heap and heap[0][0] <= watermark:
            _, _, subscription = heapq.heappop(heap)
            # A replaced or deleted subscription's entry lapses (its successor has its own).
            if catalog.subscriptions.get(subscription.key) is subscription:
                due.append(subscription)
        return due


def _copy(mark: Any) -> dict[str, Any]:
    if mark is None:
        return {"closed": {}, "late": []}
    # Keep every other field (e.g. the limit crossings already reported).
    return {**mark, "closed": dict(mark["closed"]), "late": [list(p) for p in mark["late"]]}
