"""What the state log's id bookkeeping costs per id (METERING_DEDUP_IDS=state-log, LogDedup).

Drives a `StateLog` and a `LogDedup` the way `Processor._apply` does: per measurement,
`first()` then `remember()`, with a flush every BATCH ids into a fake broker whose
deliveries resolve at once (so the clock measures the aggregator's own CPU), including
the checkpoints those flushes trigger. Every id stays in the window (no housekeeping):
the memory figure is what each id of the window keeps.

Prints CPU time per id (judging, flushing, checkpointing) and the memory each id keeps
(tracemalloc, in a second run: tracing slows Python down several times).

    .venv/bin/python -m bench.state_log_ids [--ids N] [--partitions P] [--batch B]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
import tracemalloc
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.aggregator import state_log
from services.aggregator.dedup import LogDedup
from services.aggregator.processing import position
from services.aggregator.state_log import StateLog
from services.infra.partitioning import customer_partition
from shared.series_keys import dedup_key

CUSTOMERS = 1_000
ENVELOPE = 1_000  # measurements per record, as the ingest service packs them
# Lower than the production floor (8 MiB) so that a run of a million ids over a dozen
# partitions checkpoints each partition a few times, as a long-running worker would.
CHECKPOINT_FLOOR = 1024 * 1024


@dataclass
class Figures:
    ids: int = 0
    judge_s: float = 0.0
    flush_s: float = 0.0
    checkpoint_s: float = 0.0
    checkpoints: int = 0
    records: int = 0
    record_bytes: int = 0


class Broker:
    """A state topic that takes every record at once and keeps nothing."""

    def __init__(self, figures: Figures) -> None:
        self.figures = figures

    async def send(self, key: bytes, value: bytes | None, partition: int) -> Any:
        self.figures.records += 1
        self.figures.record_bytes += len(value or b"")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def batches(ids: int, partitions: int, batch: int) -> Iterator[list[tuple[str, int, int, datetime]]]:
    """(dedup key, position, partition, event time) of every id, a flush's worth at a time."""
    customers = [f"cust-{i:06d}" for i in range(CUSTOMERS)]
    partition_of = {c: customer_partition(c, partitions) for c in customers}
    start = datetime(2026, 3, 1, tzinfo=UTC)
    times = [start + timedelta(seconds=37 * i) for i in range(4096)]
    for first in range(0, ids, batch):
        rows = []
        for i in range(first, min(first + batch, ids)):
            customer = customers[i % CUSTOMERS]
            rows.append((dedup_key(customer, "api_calls", f"evt-{i:032d}"),
                         position(i // ENVELOPE, i % ENVELOPE), partition_of[customer], times[i % len(times)]))
        yield rows


def run(ids: int, partitions: int, batch: int) -> tuple[Figures, StateLog]:
    figures = Figures()
    broker = Broker(figures)

    class TimedStateLog(StateLog):  # a subclass, not a patched method: StateLog may be compiled
        async def checkpoint(self, send: Any, partitions: Collection[int]) -> int:
            began = time.process_time()
            written = await super().checkpoint(send, partitions)
            figures.checkpoint_s += time.process_time() - began
            figures.checkpoints += len(partitions)
            return written

    state = TimedStateLog(partitions=partitions,
                          partition_of=lambda customer: customer_partition(customer, partitions))
    dedup = LogDedup(state)
    loop = asyncio.new_event_loop()

    for rows in batches(ids, partitions, batch):
        began = time.process_time()
        for key, pos, partition, at in rows:  # as Processor._apply does, per measurement
            first = dedup.first(key, partition)
            if first is None:
                dedup.remember(key, pos, partition, at)
        figures.judge_s += time.process_time() - began
        began = time.process_time()
        loop.run_until_complete(state.flush(broker.send))
        figures.flush_s += time.process_time() - began
        figures.ids += len(rows)
    loop.close()
    figures.flush_s -= figures.checkpoint_s
    return figures, state


def memory_per_id(ids: int, partitions: int, batch: int) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    figures, state = run(ids, partitions, batch)
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del state
    return kept / figures.ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--batch", type=int, default=13_000, help="ids per flush")
    args = parser.parse_args()
    state_log.MIN_CHECKPOINT_BYTES = CHECKPOINT_FLOOR
    figures, _ = run(args.ids, args.partitions, args.batch)
    per_id = 1e6 / figures.ids
    total = figures.judge_s + figures.flush_s + figures.checkpoint_s
    print(f"ids {figures.ids:,} over {args.partitions} partitions, a flush every {args.batch:,}; "
          f"{figures.checkpoints} checkpoints; {figures.records:,} records, {figures.record_bytes / 1e6:.1f} MB")
    print(f"CPU/id: {total * per_id:.2f} µs (first+remember {figures.judge_s * per_id:.2f}, "
          f"flush {figures.flush_s * per_id:.2f}, checkpoints {figures.checkpoint_s * per_id:.2f})")
    kept = memory_per_id(args.ids, args.partitions, args.batch)
    print(f"memory per id in the window: {kept:.0f} bytes (tracemalloc)")


if __name__ == "__main__":
    main()
