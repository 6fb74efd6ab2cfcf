"""Watermarks and period close.

A partition's watermark is the greatest event time seen in it less the allowed
lateness; when the partition has been idle for `idle` seconds it also advances with
the wall clock (now less lateness), so quiet customers still close. A period
[start, end) closes once the watermark passes end + grace: its totals are emitted as a
PeriodTotals event. Usage that lands in an already-closed period marks it late, and
the next tick re-emits its totals so the rater can issue a correction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, MutableMapping

from services.aggregator.processing import SEP
from services.aggregator.quantities import totals_with_trial
from services.infra.partitioning import customer_partition
from shared.catalog import Catalog
from shared.models.invoice import PeriodTotals
from shared.periods import Period, period_at_index
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


@dataclass
class SeriesIndex:
    """customer -> series table keys, so a close need not scan the whole table."""

    keys: dict[str, set[str]] = field(default_factory=dict)

    def add(self, table_key: str) -> None:
        customer = table_key.split(SEP, 1)[0]
        self.keys.setdefault(customer, set()).add(table_key)

    def rebuild(self, table_keys: Iterable[str]) -> None:
        self.keys = {}
        for key in table_keys:
            self.add(key)

    def of(self, customer: str) -> set[str]:
        return self.keys.get(customer, set())


@dataclass
class Closer:
    catalog: Callable[[], Catalog]
    series: MutableMapping[str, Any]
    marks: MutableMapping[str, Any]  # customer -> {"closed": {sub: next index}, "late": [[sub, index]]}
    index: SeriesIndex
    watermarks: Watermarks
    grace: timedelta
    partitions: int
    started: datetime

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

    def tick(self, owned: set[int], now: datetime) -> list[PeriodTotals]:
        catalog = self.catalog()
        out: list[PeriodTotals] = []
        for subscription in list(catalog.subscriptions.values()):
            customer = subscription.customer_name
            partition = customer_partition(customer, self.partitions)
            if partition not in owned:
                continue
            plan = catalog.price_plans.get(subscription.price_plan_name)
            watermark = self.watermarks.watermark(partition, now, self.started)
            if plan is None or watermark is None:
                continue
            mark = _copy(self.marks.get(customer))
            next_index = int(mark["closed"].get(subscription.key, 0))
            changed = False
            while True:
                period = period_at_index(subscription.start_time, plan.period, next_index, subscription.end_time)
                if period.start >= period.end or period.end + self.grace > watermark:
                    break
                out.append(self._totals(subscription.key, subscription.start_time, plan.name, customer, period, "closed", watermark))
                next_index += 1
                changed = True
            for sub_key, index in mark["late"]:
                if sub_key != subscription.key or index >= next_index:
                    continue
                period = period_at_index(subscription.start_time, plan.period, index, subscription.end_time)
                out.append(self._totals(sub_key, subscription.start_time, plan.name, customer, period, "late_usage", watermark))
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


def _copy(mark: Any) -> dict[str, Any]:
    if mark is None:
        return {"closed": {}, "late": []}
    # Keep every other field (e.g. the limit crossings already reported).
    return {**mark, "closed": dict(mark["closed"]), "late": [list(p) for p in mark["late"]]}
