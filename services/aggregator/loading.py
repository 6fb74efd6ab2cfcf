"""Taking over partitions: their state from the state log, their id filters from the store.

Done once per assignment, under the worker's lock, before the first batch or tick of a
partition touches its state (worker.py); a revoked partition's state is dropped, so a
partition that comes back is read again as its last owner left it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.aggregator.closing import SeriesIndex, Watermarks
from services.aggregator.dedup import Dedup, StoreDedup, filter_from_store
from services.aggregator.faults import Faults
from services.aggregator.state_log import StateLog
from services.aggregator.state_reader import read_partition
from services.aggregator.ticks import COMPACTION_MARGIN
from services.aggregator.writer import StoreWriter
from services.infra.partitioning import partition_key

log = logging.getLogger("metering.aggregator")


@dataclass
class PartitionLoader:
    bootstrap: str
    state_topic: str
    measurements_topic: str
    state: StateLog
    dedup: Dedup
    index: SeriesIndex
    watermarks: Watermarks
    writer: StoreWriter
    dedup_window: timedelta
    started: datetime
    faults: Faults

    async def ensure_loaded(self, partitions: set[int]) -> None:
        """Read the state of partitions just assigned to this worker (once per assignment)."""
        missing = partitions - self.state.loaded
        for partition in sorted(missing):
            records = await asyncio.to_thread(read_partition, self.bootstrap, self.state_topic, partition)
            self.state.load(partition, records)
            await self.load_filter(partition)
            clock = self.state.clock.get(partition_key(partition))
            if clock is not None:
                self.watermarks.observe(partition, datetime.fromisoformat(clock["max_event_time"]), self.started)
        if missing:
            self.index.rebuild(list(self.state.series.keys()))
            log.info("loaded the state of partitions %s (%d series)", sorted(missing), len(self.state.series))
        self.faults.reached("after_load", len(missing))

    async def load_filter(self, partition: int) -> None:
        """The partition's id filter, from the first carriers in the store (dedup.py)."""
        if not isinstance(self.dedup, StoreDedup):
            return
        since = datetime.now(UTC) - self.dedup_window - COMPACTION_MARGIN
        built = await asyncio.to_thread(
            filter_from_store, self.writer.read, self.measurements_topic, partition, since, self.dedup.filter_bytes)
        self.dedup.load(partition, built)
        log.info("id filter of partition %d: %d ids of the dedup window", partition, built.added)

    async def refresh_full_filters(self, owned: set[int]) -> None:
        """Rebuild filters that filled up: from the window alone, so older ids drop out."""
        if isinstance(self.dedup, StoreDedup):
            for partition in sorted(p for p in owned if p in self.dedup.filters and self.dedup.filters[p].full):
                await self.load_filter(partition)

    def forget(self, partitions: set[int]) -> None:
        self.state.forget(partitions)
        if isinstance(self.dedup, StoreDedup):
            self.dedup.forget(partitions)
