"""Plan limits: one LimitExceeded event per customer, feature and period, at the first crossing."""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.aggregator.closing import SeriesIndex
from shared.catalog import Catalog
from shared.entitlements import limit_exceeded_events
from shared.models.events import LimitExceededEvent
from shared.models.json_types import format_utc
from shared.periods import period_containing
from shared.quantities import period_totals

log = logging.getLogger("metering.aggregator")


@dataclass
class LimitWatch:
    catalog: Callable[[], Catalog]
    series: MutableMapping[str, Any]
    marks: MutableMapping[str, Any]  # the crossings already reported live in the close marks
    index: SeriesIndex

    def crossings(self, customers: set[str], now: datetime) -> list[LimitExceededEvent]:
        """New crossings of the customers' current periods; remembered in their marks."""
        catalog = self.catalog()
        events = []
        for customer in customers:
            subscription = catalog.subscription_at(customer, now)
            plan = catalog.price_plans.get(subscription.price_plan_name) if subscription else None
            if subscription is None or plan is None or not plan.limits:
                continue
            period = period_containing(subscription.start_time, plan.period, now, subscription.end_time)
            usage = {
                meter: sum(by_series.values(), Decimal(0))
                for meter, by_series in period_totals(
                    catalog.meters, self.series, self.index.of(customer), subscription.start_time,
                    period.start, period.end, now,
                ).items()
            }
            mark = self.marks.get(customer) or {"closed": {}, "late": []}
            reported = {(customer, f, datetime.fromisoformat(s)) for f, s in mark.get("limits", [])}
            found = limit_exceeded_events(plan, subscription, period, usage, reported)
            for crossing in found:
                events.append(LimitExceededEvent(
                    customer_name=customer, price_plan_name=plan.name, feature=crossing.feature,
                    period_start=crossing.period_start, period_end=crossing.period_end,
                    limit=crossing.limit, usage=crossing.usage, detected_at=now,
                ))
                log.info("limit exceeded: %s %s %s > %s", customer, crossing.feature, crossing.usage, crossing.limit)
            if found:
                self.marks[customer] = {**mark, "limits": list(mark.get("limits", [])) + [
                    [c.feature, format_utc(c.period_start)] for c in found
                ]}
        return events
