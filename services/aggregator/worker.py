"""Composition root of the aggregator: wires catalog, state, store and Kafka together.

Agents never let an exception escape: Faust would ack the batch and move on. A record
that can never be processed is dead-lettered (processing.py); anything else (ClickHouse
or Kafka down after retries, a bug) stops the process with a non-zero code *before* the
batch is acked, so its records are read again after the restart and nothing is lost.
The batch handler (batches.py) and the timer (ticks.py) share the state: one lock makes
each of them a unit, so a flush never writes half of the other's changes.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import faust

from services.aggregator.app import Declarations, declare
from services.aggregator.batches import BatchHandler, slices
from services.aggregator.closing import Closer, SeriesIndex, Watermarks
from services.aggregator.dedup import Dedup, LogDedup, StoreDedup
from services.aggregator.faults import Faults
from services.aggregator.invoice_store import InvoiceStore
from services.aggregator.limits import LimitWatch
from services.aggregator.loading import PartitionLoader
from services.aggregator.pages import add_pages
from services.aggregator.processing import Processor, Record
from services.aggregator.projection import Projection
from services.aggregator.state_log import StateLog
from services.aggregator.ticks import COMPACTION_MARGIN, Ticker
from services.aggregator.writer import StoreWriter
from services.infra import native, topics
from services.infra.catalog_view import CatalogView
from services.infra.clickhouse_store import apply_migrations, connect
from services.infra.heap import collector_paused, limit_arenas, page_out_mapped, release_free_memory
from services.infra.partitioning import CustomerPartitions
from services.infra.stop_deadline import StopDeadline
from services.settings import Settings
from shared.resolution import Limits

log = logging.getLogger("metering.aggregator")

BATCH_SIZE = 2000  # records (an envelope is one record)
BATCH_WITHIN_SECONDS = 0.2
# A batch of 2,000 envelopes can hold 2,000,000 measurements: handled whole, it kept
# hundreds of megabytes of rows and facts alive at once and held up every record behind
# it for tens of seconds. It is handled in slices (METERING_AGGREGATOR_SLICE_BYTES, 8 MiB:
# some 55,000 measurements, one to two seconds of a backlog; services/settings.py:SLICE_BYTES
# says why that size), each through the whole flush order.
EXIT_STORE_FAILURE = 70


def fatal(message: str) -> None:
    """Stop at once, without acking: the records are processed again after restart."""
    # Called only from except blocks, so exc_info is the error that stops the worker.
    log.critical("%s; stopping the worker so nothing is acked", message, exc_info=True)  # noqa: LOG014
    logging.shutdown()
    os._exit(EXIT_STORE_FAILURE)


# Free heap pages go back to the OS this often (services/infra/heap.py): a trim takes
# about 3 ms with a large heap and far less when there is little to give back, and
# between trims the freed memory of every batch in between adds to the peak RSS.
TRIM_SECONDS = 5.0
MALLOC_ARENAS = 2  # services/infra/heap.py: one per thread held more memory than it used
ENGINE_LIBRARY = "/chdb/_chdb"  # the embedded engine's shared library (chdb/_chdb.abi3.so)


def build(settings: Settings, bootstrap: str) -> Declarations:
    topics.ensure_topics(settings, bootstrap)
    d = declare(settings, bootstrap)
    app = d.app
    client = connect(settings)
    apply_migrations(client)
    writer = StoreWriter(client)
    view = CatalogView(settings, bootstrap)
    invoices = InvoiceStore(
        bootstrap, topics.name(settings, topics.INVOICES),
        f"{settings.kafka.consumer_group_prefix}-invoice-store", writer,
    )
    started = datetime.now(UTC)
    faults = Faults.from_environment()

    partition_of = CustomerPartitions(settings.kafka.partitions).__getitem__

    state = StateLog(partitions=settings.kafka.partitions, partition_of=partition_of)
    dedup = dedup_for(settings, state)
    dedup_window = timedelta(days=settings.event_time.dedup_window_days)
    index = SeriesIndex()
    watermarks = Watermarks(
        lateness=timedelta(seconds=settings.event_time.allowed_lateness_seconds),
        idle=timedelta(seconds=settings.event_time.idle_seconds),
    )
    closer = Closer(
        catalog=lambda: view.catalog, series=state.series, marks=state.marks, index=index,
        watermarks=watermarks, grace=timedelta(seconds=settings.event_time.grace_seconds),
        partitions=settings.kafka.partitions, started=started,
    )
    processor = _processor(settings, view, state, dedup, closer, partition_of)
    projection = Projection(catalog=lambda: view.catalog, series=state.series, closer=closer)
    measurements_topic = topics.name(settings, topics.MEASUREMENTS)

    async def send_state(key: bytes, value: bytes | None, partition: int) -> Any:
        return await d.state.send(key=key, value=value, partition=partition)

    handler = BatchHandler(
        processor=processor, state=state, writer=writer, projection=projection, index=index,
        watermarks=watermarks, closer=closer,
        limits=LimitWatch(lambda: view.catalog, state.series, state.marks, index),
        topics=d, measurements_topic=measurements_topic, started=started, faults=faults, send_state=send_state,
        dedup_since=lambda now: now - dedup_window - COMPACTION_MARGIN,
    )
    ticker = Ticker(
        catalog=lambda: view.catalog, state=state, writer=writer, projection=projection, index=index,
        watermarks=watermarks, closer=closer, partitions=settings.kafka.partitions,
        dedup_window=dedup_window, period_totals_topic=d.period_totals,
        faults=faults, send_state=send_state, started=started,
    )
    lock = asyncio.Lock()
    housekept = [time.monotonic()]
    trimmed = [time.monotonic()]

    loader = PartitionLoader(
        bootstrap=bootstrap, state_topic=topics.name(settings, topics.AGGREGATOR_STATE),
        measurements_topic=measurements_topic, state=state, dedup=dedup, index=index, watermarks=watermarks,
        writer=writer, dedup_window=dedup_window, started=started, faults=faults,
    )

    def owned() -> set[int]:
        return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == measurements_topic}

    @app.task  # type: ignore[untyped-decorator]
    async def start_side_services() -> None:
        view.start()
        release_free_memory()  # what reading the whole catalog topic allocated and freed
        # Start-up (migrations, the first queries) left hundreds of MB of the embedded
        # engine's library resident that a running worker rarely touches again.
        paged = page_out_mapped(ENGINE_LIBRARY)
        log.info("start-up over: asked the kernel to reclaim %d MiB of %s mappings", paged >> 20, ENGINE_LIBRARY)
        invoices.start()

    @app.agent(d.measurements)
    async def fold_measurements(stream: Any) -> None:
        # Records are judged against the catalog: before the view has loaded it, known
        # customers would read as unknown and be dead-lettered.
        while not view.ready:  # noqa: ASYNC110 - the view's consumer thread sets a plain flag
            await asyncio.sleep(0.05)
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN_SECONDS):
            try:
                runs = list(slices([_record(e.message) for e in events], settings.limits.aggregator_slice_bytes))
                # Paused for the whole take: re-enabled between two slices, it walked the
                # next slice's items, prepared and alive, every time.
                with collector_paused():
                    for records, upcoming in zip(runs, [*runs[1:], None], strict=True):
                        async with lock:  # taken per slice: period closes and lag gauges run between them
                            await loader.ensure_loaded({r.partition for r in records})
                            await handler.handle(records, upcoming)
            except Exception:  # noqa: BLE001 - any failure stops the worker unacked; fatal() logs it
                fatal("measurement batch failed")

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def forget_revoked(app_: Any, revoked: Any, **kwargs: Any) -> None:
        async with lock:
            partitions = {tp.partition for tp in revoked if tp.topic == measurements_topic}
            faults.reached("on_revoke", len(partitions))
            loader.forget(partitions)
            handler.forget_prepared()

    @app.timer(interval=0.5)  # type: ignore[untyped-decorator]
    async def tick() -> None:
        if app.rebalancing or not view.ready:
            return
        try:
            async with lock:
                mine = owned()
                await loader.ensure_loaded(mine)
                now = datetime.now(UTC)
                await ticker.close_periods(mine, now)
                if time.monotonic() - housekept[0] >= settings.event_time.housekeeping_seconds:
                    await ticker.housekeep(mine)
                    await loader.refresh_full_filters(mine)
                    housekept[0] = time.monotonic()
                await ticker.observe_lag(app.consumer, measurements_topic, handler.processed, mine, now)
            if time.monotonic() - trimmed[0] >= TRIM_SECONDS:
                release_free_memory()  # what the batches since the last time freed
                trimmed[0] = time.monotonic()
        except Exception:  # noqa: BLE001 - any failure stops the worker unacked; fatal() logs it
            fatal("period close failed")

    add_pages(app, writer, settings.http.api_key.get_secret_value().encode() if settings.http.api_key else None,
              lambda: _readiness(app, view, invoices))

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def stop_side_services(app_: Any, **kwargs: Any) -> None:
        invoices.stop()
        view.stop()

    return d


def _readiness(app: faust.App, view: CatalogView, invoices: InvoiceStore) -> dict[str, bool]:
    return {
        "catalog": view.ready,
        "invoice_store": invoices.failed is None,
        "assigned": not app.rebalancing and bool(app.assignor.assigned_actives()),
    }


def _processor(
    settings: Settings, view: CatalogView, state: StateLog, dedup: Dedup, closer: Closer,
    partition_of: Callable[[str], int],
) -> Processor:
    return Processor(
        catalog=lambda: view.catalog,
        refresh_catalog=lambda: view.sync(10.0),
        limits=Limits(
            max_future=timedelta(seconds=settings.event_time.max_future_seconds),
            dedup_window=timedelta(days=settings.event_time.dedup_window_days),
        ),
        series=state.series, dedup=dedup, closed_through=closer.closed_through,
        partition_of=partition_of,
    )


def dedup_for(settings: Settings, state: StateLog) -> Dedup:
    """Where the ids of the dedup window live (dedup.py explains the choice)."""
    mode = settings.limits.dedup_ids
    if mode == "auto":
        mode = "store" if settings.clickhouse.url else "state-log"
    if mode == "state-log":
        return LogDedup(state)
    return StoreDedup(filter_bytes=settings.limits.dedup_filter_mib * 1024 * 1024,
                      recent_capacity=settings.limits.dedup_recent_ids)


def _record(message: Any) -> Record:
    timestamp = datetime.fromtimestamp(message.timestamp, tz=UTC)
    return Record(
        topic=message.topic, partition=message.partition, offset=message.offset,
        key=message.key, value=message.value, timestamp=timestamp,
    )


# The fold allocates a few containers per measurement, and the state it keeps is large:
# with the default young-generation threshold (700) the collector ran every ~100
# measurements and took a third of the fold's CPU (bench.fold; docs/benchmarks.md).
# Garbage here is rarely cyclic, so collecting 70 times less often costs little memory.
GC_THRESHOLDS = (50_000, 50, 100)


class BoundedStopWorker(faust.Worker):
    """A Faust worker whose stop, whatever started it (a signal, a crash), ends the process
    within `deadline.seconds` even if the Kafka client hangs (services/infra/stop_deadline.py)."""

    deadline: StopDeadline | None = None

    async def on_stop(self) -> None:
        # Service.stop() calls this first, before any child (the consumer) is stopped.
        if self.deadline is not None:
            self.deadline.arm()
        await super().on_stop()


def run(settings: Settings, bootstrap: str) -> None:
    if native.stale():  # an extension built from an older source would run instead of the code on disk
        raise SystemExit(f"aggregator: {native.describe()}")
    log.info("aggregator: %s", native.describe())
    gc.set_threshold(*GC_THRESHOLDS)
    limit_arenas(MALLOC_ARENAS)
    declarations = build(settings, bootstrap)
    # METERING_FAUST_LOG_LEVEL=INFO shows Faust's own rebalance and recovery steps.
    level = os.environ.get("METERING_FAUST_LOG_LEVEL", "WARNING")
    worker = BoundedStopWorker(declarations.app, loglevel=level, quiet=True, override_logging=False)
    worker.deadline = StopDeadline(settings.kafka.stop_grace_seconds)
    sys.argv = sys.argv[:1]
    worker.execute_from_commandline()
