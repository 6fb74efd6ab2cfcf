"""services.aggregator.ticks: housekeeping forgets the ids that left the dedup window, in
the partitions this worker owns, and logs their removal."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from services.aggregator.closing import SeriesIndex, Watermarks
from services.aggregator.faults import Faults
from services.aggregator.state_log import StateLog
from services.aggregator.ticks import COMPACTION_MARGIN, Ticker
from tests.unit.test_state_log import Changelog

WINDOW = timedelta(days=1)


def by_customer(customer: str) -> int:
    return 0 if customer.startswith("a") else 1


def test_ids_older_than_the_window_leave_the_owned_partitions_and_the_log() -> None:
    log = Changelog()
    state = StateLog(partitions=2, partition_of=by_customer)
    none: Any = None
    ticker = Ticker(
        catalog=lambda: none, state=state, writer=none, projection=none, index=SeriesIndex(),
        watermarks=Watermarks(lateness=timedelta(seconds=1), idle=timedelta(seconds=5)), closer=none,
        partitions=2, dedup_window=WINDOW, period_totals_topic=none, faults=Faults(None), send_state=log.send,
        started=datetime.now(UTC),
    )
    gone = datetime.now(UTC) - WINDOW - COMPACTION_MARGIN - timedelta(hours=1)
    recent = datetime.now(UTC) - timedelta(hours=1)
    state.add_id("acme\x1fc\x1fgone", 1, gone, 0)
    state.add_id("acme\x1fc\x1frecent", 2, recent, 0)
    state.add_id("bob\x1fc\x1fgone", 3, gone, 1)  # not owned: left to its owner
    asyncio.run(state.flush(log.send))
    asyncio.run(ticker.housekeep({0}))
    assert not state.pending()
    kept = {key for ids in state.ids.values() for key in ids}
    assert kept == {"acme\x1fc\x1frecent", "bob\x1fc\x1fgone"}
    again = StateLog(partitions=2, partition_of=by_customer)
    for partition in (0, 1):
        again.load(partition, log.compacted())
    assert again.ids == state.ids
