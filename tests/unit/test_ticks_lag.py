"""services.aggregator.ticks: the lag gauges survive a partition revoked under their feet."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka.errors import IllegalStateError
from faust.types import TP

from services.aggregator.closing import SeriesIndex, Watermarks
from services.aggregator.faults import Faults
from services.aggregator.metrics import CONSUMER_LAG
from services.aggregator.state_log import StateLog
from services.aggregator.ticks import Ticker

TOPIC = "measurements"
NOW = datetime(2026, 3, 1, tzinfo=UTC)


class Consumer:
    """aiokafka as seen through Faust, with partition 0 revoked by the consumer's thread."""

    def __init__(self, revoked_in: str) -> None:
        self.revoked_in = revoked_in

    def highwater(self, tp: TP) -> int:
        assert tp.partition != 0 or self.revoked_in != "highwater", "Partition is not assigned"
        return 100 + tp.partition

    async def position(self, tp: TP) -> int:
        if tp.partition == 0 and self.revoked_in == "position":
            raise IllegalStateError(f"No current position for {tp}")
        return 40


def ticker() -> Ticker:
    none: Any = None
    return Ticker(
        catalog=none, state=StateLog(partitions=2, partition_of=lambda c: 0), writer=none, projection=none,
        index=SeriesIndex(), watermarks=Watermarks(lateness=timedelta(seconds=1), idle=timedelta(seconds=5)),
        closer=none, partitions=2, dedup_window=timedelta(days=1), period_totals_topic=none, faults=Faults(None),
        send_state=none, started=NOW,
    )


def test_a_partition_revoked_while_its_lag_is_read_is_skipped_and_the_others_measured() -> None:
    for revoked_in in ("highwater", "position"):
        CONSUMER_LAG.labels("1").set(-1)
        asyncio.run(ticker().observe_lag(Consumer(revoked_in), TOPIC, {1: 89}, {0, 1}, NOW))
        assert CONSUMER_LAG.labels("1")._value.get() == 101 - 90, revoked_in
