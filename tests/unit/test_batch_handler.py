"""services.aggregator.batches.BatchHandler: the next slice is prepared while this one is
stored, used when it is handed in, and prepared again after a revocation."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from unittest.mock import MagicMock

import pytest

from services.aggregator.batches import BatchHandler
from services.aggregator.closing import Closer, SeriesIndex, Watermarks
from services.aggregator.dedup import LogDedup
from services.aggregator.faults import Faults
from services.aggregator.limits import LimitWatch
from services.aggregator.processing import Processor, Record
from services.aggregator.projection import Projection
from services.aggregator.state_log import StateLog
from services.aggregator.writer import StoreWriter
from shared.resolution import Limits
from tests.unit.test_processing import NOW, make_catalog, record, usage
from tests.unit.test_state_log import Changelog


def handler_and_log() -> tuple[BatchHandler, list[list[Record]], MagicMock]:
    catalog = make_catalog()
    state = StateLog(partitions=1, partition_of=lambda customer: 0)
    index = SeriesIndex()
    watermarks = Watermarks(lateness=timedelta(0), idle=timedelta(0))
    closer = Closer(catalog=lambda: catalog, series=state.series, marks=state.marks, index=index,
                    watermarks=watermarks, grace=timedelta(0), partitions=1, started=NOW)
    prepared: list[list[Record]] = []

    class Watched(Processor):  # a subclass, not a patched method: Processor may be compiled
        def prepare(self, records: list[Record]) -> list[str]:
            prepared.append(records)
            return super().prepare(records)

    processor = Watched(
        catalog=lambda: catalog, refresh_catalog=lambda: None,
        limits=Limits(max_future=timedelta(minutes=5), dedup_window=timedelta(days=3650)),
        series=state.series, dedup=LogDedup(state), closed_through=closer.closed_through,
    )
    client = MagicMock()
    handler = BatchHandler(
        processor=processor, state=state, writer=StoreWriter(client),
        projection=Projection(catalog=lambda: catalog, series=state.series, closer=closer), index=index,
        watermarks=watermarks, closer=closer,
        limits=LimitWatch(catalog=lambda: catalog, series=state.series, marks=state.marks, index=index),
        topics=MagicMock(), measurements_topic="measurements", started=NOW, faults=Faults(None),
        send_state=Changelog().send, dedup_since=lambda now: now - timedelta(days=3650),
    )
    return handler, prepared, client


def raw_ids(client: MagicMock) -> list[Any]:
    return [i for c in client.insert_arrow.call_args_list if c.args[0] == "measurements"
            for i in c.args[1].column("id").to_pylist()]


def test_the_next_slice_is_prepared_once_while_this_one_is_stored() -> None:
    handler, prepared, client = handler_and_log()
    first, second = [record(0, usage("a", 2))], [record(1, usage("b", 3))]
    asyncio.run(handler.handle(first, second))
    assert prepared == [first, second]  # the second during the first's store step
    asyncio.run(handler.handle(second))
    assert prepared == [first, second]  # not prepared a second time
    assert raw_ids(client) == ["a", "b"]
    assert handler.processed == {0: 1}


def test_a_slice_other_than_the_prepared_one_is_prepared_itself() -> None:
    handler, prepared, client = handler_and_log()
    first, second, other = [record(0, usage("a", 2))], [record(1, usage("b", 3))], [record(1, usage("b", 3))]
    asyncio.run(handler.handle(first, second))
    asyncio.run(handler.handle(other))  # equal records, another list: prepared for itself
    assert prepared == [first, second, other]
    assert raw_ids(client) == ["a", "b"]


def test_after_a_revocation_the_prepared_slice_is_prepared_again() -> None:
    """The dedup filters of a revoked partition may come back rebuilt from the store, with
    ids another worker stored meanwhile: suspects gathered before then would miss them."""
    handler, prepared, client = handler_and_log()
    first, second = [record(0, usage("a", 2))], [record(1, usage("b", 3))]
    asyncio.run(handler.handle(first, second))
    handler.forget_prepared()
    asyncio.run(handler.handle(second))
    assert prepared == [first, second, second]
    assert raw_ids(client) == ["a", "b"]


def test_a_failed_store_fails_the_batch_after_the_next_slice_was_prepared() -> None:
    handler, prepared, client = handler_and_log()
    client.insert_arrow.side_effect = RuntimeError("engine gone")
    handler.writer._attempts = 1
    first, second = [record(0, usage("a", 2))], [record(1, usage("b", 3))]
    with pytest.raises(RuntimeError, match="engine gone"):
        asyncio.run(handler.handle(first, second))
    assert prepared == [first, second]
    assert handler.processed == {}  # nothing acked
    assert handler.state.pending()  # and the state not written: step 2 never ran
