"""The aggregator's timer: period close, takeover resync, housekeeping, lag gauges.

Flush order of a close (a SIGKILL between two steps closes nothing twice and loses no
invoice; tests/e2e/test_crash_points.py kills the worker at each step):
  1. PeriodTotals delivered to the period-totals topic (acks=all);
  2. store: the closed periods' final gauge rows;
  3. state: the close marks appended to the state log and delivered.
A crash after 1 emits the period again after the restart, with the same totals unless
usage arrived meanwhile; the rater turns an unchanged period into nothing and a changed
one into a correction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka.errors import IllegalStateError
from faust.types import TP

from services.aggregator.closing import Closer, SeriesIndex, Watermarks
from services.aggregator.faults import Faults
from services.aggregator.metrics import CONSUMER_LAG, PERIODS, WATERMARK_LAG
from services.aggregator.outbox import Outbox
from services.aggregator.projection import Projection
from services.aggregator.state_log import StateLog
from services.aggregator.writer import StoreWriter
from services.infra.partitioning import customer_partition
from shared.catalog import Catalog
from shared.models.json_types import format_utc
from shared.periods import period_containing
from shared.series_keys import TIMELINE, parse_series_table_key
from shared.timeline import Timeline, compact

log = logging.getLogger("metering.aggregator")

# A record may be consumed a while after it was produced (and judged against the dedup
# window): keep a margin so no accepted point can land before compacted history.
COMPACTION_MARGIN = timedelta(days=2)


@dataclass
class Ticker:
    catalog: Callable[[], Catalog]
    state: StateLog
    writer: StoreWriter
    projection: Projection
    index: SeriesIndex
    watermarks: Watermarks
    closer: Closer
    partitions: int
    dedup_window: timedelta
    period_totals_topic: Any
    faults: Faults
    send_state: Callable[..., Any]
    started: datetime
    owned: set[int] = field(default_factory=set)

    async def close_periods(self, owned: set[int], now: datetime) -> None:
        gained = owned - self.owned
        self.owned = set(owned)
        if gained:
            await self._resync(gained, now)
        events = self.closer.tick(owned, now)
        if not events:
            return
        # 1. period totals
        outbox = Outbox()
        for event in events:
            PERIODS.labels(event.reason).inc()
            log.info(
                "period %s %s..%s of %s: %s", event.reason, format_utc(event.period_start),
                format_utc(event.period_end), event.customer_name, event.totals,
            )
            await outbox.send(self.period_totals_topic, event.customer_name.encode(), event.model_dump_json().encode())
        await outbox.delivered()
        self.faults.reached("after_period_totals", len(events))
        # 2. store: a closed period's gauge integral now runs to the period end, not to
        # the latest point: rewrite those rows with their final value.
        finals = [
            row for event in events for key in self.index.of(event.customer_name)
            if parse_series_table_key(key)[3] == TIMELINE for row in self.projection.rows(key, now)
        ]
        await asyncio.to_thread(self.writer.write_totals, finals)
        # 3. state
        await self.state.flush(self.send_state)
        self.faults.reached("after_close_state", len(events))

    async def _resync(self, partitions: set[int], now: datetime) -> None:
        """Rewrite the absolute totals of series this worker just took over.

        The previous owner may have logged state without reaching the store, or written
        to a store of its own (embedded engine); absolute, versioned rows make this
        rewrite harmless when nothing was missed.
        """
        self.index.rebuild(list(self.state.series.keys()))
        keys = [
            key for customer, keys in self.index.keys.items()
            if customer_partition(customer, self.partitions) in partitions for key in keys
        ]
        rows = self.projection.rows_of(keys, now)
        await asyncio.to_thread(self.writer.write_totals, rows)
        log.info("resynced %d total rows for partitions %s", len(rows), sorted(partitions))

    async def housekeep(self, owned: set[int]) -> None:
        """Forget ids older than the dedup window; compact old timeline points."""
        now = datetime.now(UTC)
        cutoff = now - self.dedup_window - COMPACTION_MARGIN
        expired = self.state.expire_ids(cutoff, owned)
        catalog = self.catalog()
        compacted = 0
        for key, value in list(self.state.series.data.items()):
            customer, meter_name, _, period = parse_series_table_key(key)
            meter = catalog.meters.get(meter_name)
            if period != TIMELINE or meter is None or meter.reporting_method == "total":
                continue
            if customer_partition(customer, self.partitions) not in owned:
                continue
            oldest = self._oldest_open_start(customer, cutoff)
            if oldest is not None and isinstance(value, Timeline):
                timeline = value.copy()
                before = len(timeline.points)
                compact(meter, timeline, oldest)
                if len(timeline.points) != before:
                    self.state.series[key] = timeline
                    compacted += 1
        await self.state.flush(self.send_state)
        if expired or compacted:
            log.info("housekeeping: %d ids expired, %d timelines compacted", expired, compacted)

    def _oldest_open_start(self, customer: str, cutoff: datetime) -> datetime | None:
        """Start of the oldest period a measurement inside the dedup window can touch."""
        catalog = self.catalog()
        subscription = catalog.subscription_at(customer, cutoff)
        if subscription is None:
            return None
        plan = catalog.price_plans.get(subscription.price_plan_name)
        if plan is None:
            return None
        return period_containing(subscription.start_time, plan.period, cutoff, subscription.end_time).start

    async def observe_lag(
        self, consumer: Any, topic: str, processed: dict[int, int], owned: set[int], now: datetime,
    ) -> None:
        for partition in owned:
            tp = TP(topic, partition)
            try:
                highwater = consumer.highwater(tp)
                if highwater is not None:
                    last = processed.get(partition)
                    next_offset = last + 1 if last is not None else await consumer.position(tp)
                    CONSUMER_LAG.labels(str(partition)).set(max(highwater - (next_offset or 0), 0))
            except (AssertionError, IllegalStateError):
                # Revoked since `owned` was read: the consumer runs in a thread of its own
                # and a rebalance may begin at any moment (aiokafka asserts in highwater()
                # and raises in position()). A lag gauge must not stop the worker (it did,
                # with exit code 70, in the handover tests); the next tick measures again.
                continue
            mark = self.watermarks.watermark(partition, now, self.started)
            if mark is not None:
                WATERMARK_LAG.labels(str(partition)).set((now - mark).total_seconds())
