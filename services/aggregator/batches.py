"""One micro-batch of measurement records, from Faust's stream to the store and the log.

Flush order (a SIGKILL between any two steps loses nothing and counts nothing twice;
tests/e2e/test_crash_points.py kills the worker at each step):
  0. fold the batch in memory (processing.Processor), then deliver what it sends on:
     measurements forwarded to their customer's partition (a replay sends them again;
     their ids deduplicate), dead letters and limit events;
  1. store: raw rows, absolute totals and watermarks to ClickHouse (idempotent: rows are
     keyed by identity and versioned by position), in a thread so the loop keeps going;
     meanwhile the next batch is decoded and judged (Processor.prepare, which changes no
     state): the rows are made Arrow tables first, on the loop's thread, and the engine's
     insert releases the GIL, so the two run on the machine's two cores at once;
  2. state: the batch's changes appended to the state log and delivered (acks=all);
  3. offsets: only then does the handler return; Faust acks the batch's records and
     commits their offsets. Records replayed from before the commit are recognised by
     the positions in the state (see processing.py) and change nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.aggregator.closing import Closer, SeriesIndex, Watermarks
from services.aggregator.dedup import first_carriers
from services.aggregator.faults import Faults
from services.aggregator.limits import LimitWatch
from services.aggregator.metrics import DEAD_LETTERS, DEDUP_HITS, DEDUP_LOOKUPS, EVENTS, INGEST_TO_STORED
from services.aggregator.outbox import Outbox
from services.aggregator.processing import DeadLetter, Processor, Record
from services.aggregator.projection import Projection
from services.aggregator.state_log import StateLog
from services.aggregator.writer import StoreBatch, StoreWriter
from services.infra.partitioning import partition_key
from shared.metrics_labels import field_label
from shared.models.json_types import format_utc
from shared.series_keys import parse_series_table_key

log = logging.getLogger("metering.aggregator")


@dataclass
class BatchHandler:
    processor: Processor
    state: StateLog
    writer: StoreWriter
    projection: Projection
    index: SeriesIndex
    watermarks: Watermarks
    closer: Closer
    limits: LimitWatch
    topics: Any  # Declarations: measurements, dead_letters, state (the log's table)
    measurements_topic: str
    started: datetime
    faults: Faults
    send_state: Callable[..., Any]
    dedup_since: Callable[[datetime], datetime]  # now -> the oldest event time an id is remembered from
    processed: dict[int, int] = field(default_factory=dict)  # partition -> last offset handled
    # The batch prepared while the previous one was stored, and its dedup suspects.
    _prepared: tuple[list[Record], list[str]] | None = field(default=None, init=False, repr=False)

    async def handle(self, records: list[Record], upcoming: list[Record] | None = None) -> None:
        """Take `records` through the flush order; `upcoming`, the batch that will be
        handed in next (if known), is prepared while this one is stored."""
        now = datetime.now(UTC)
        # However much of a batch is dead-lettered, the worker goes on: stopping would turn
        # hostile input into a restart loop, and a dead letter loses nothing (it carries
        # the record and its reason; MeteringDeadLetterRateHigh tells a person).
        prepared, self._prepared = self._prepared, None
        suspects = prepared[1] if prepared is not None and prepared[0] is records else self.processor.prepare(records)
        if suspects:  # ids only the store can place (dedup.py): one query, off the event loop
            since = self.dedup_since(now)
            self.processor.dedup.answers = await asyncio.to_thread(
                self.writer.read, lambda client: first_carriers(client, suspects, since))
            DEDUP_LOOKUPS.inc(len(suspects))
        result = self.processor.process(records)

        # 0. forwards, dead letters, limit events
        outbox = Outbox()
        for forward in result.forwards:
            await outbox.send(self.topics.measurements, forward.customer.encode(), forward.value)
        for letter in result.dead_letters:
            await self._dead_letter(outbox, letter)
        for customer, sub_key, period_index in result.late_periods:
            self.closer.mark_late(customer, sub_key, period_index)
        customers = {parse_series_table_key(k)[0] for k in result.dirty_series}
        for event in self.limits.crossings(customers, now):
            await outbox.send(self.topics.limit_events, event.customer_name.encode(), event.model_dump_json().encode())
        await outbox.delivered()
        self.faults.reached("after_forward", len(result.forwards))

        # 1. store
        for record in records:
            self.watermarks.observe(record.partition, result.max_event_time.get(record.partition), now)
        for key in result.dirty_series:
            self.index.add(key)
        totals = self.projection.rows_of(result.dirty_series, now)
        marks = self._watermark_rows(records, result.max_event_time, now)
        batch = StoreBatch.of(result.raw_rows, totals, marks)
        # Submitted now (asyncio.to_thread would start the thread only at the next await).
        stored = asyncio.get_running_loop().run_in_executor(None, self.writer.write_batch, batch)
        try:
            if upcoming is not None:
                self._prepared = (upcoming, self.processor.prepare(upcoming))
        finally:
            await stored  # a failed prepare() still waits for the store before failing the batch
        self.faults.reached("after_store", len(result.raw_rows))

        # 2. state
        await self.state.flush(self.send_state)
        self.faults.reached("after_state", len(result.raw_rows))

        # 3. offsets: returning lets Faust ack and commit the batch.
        stored_at = datetime.now(UTC)
        for record in records:
            INGEST_TO_STORED.observe(max((stored_at - record.timestamp).total_seconds(), 0.0))
            if record.offset > self.processed.get(record.partition, -1):
                self.processed[record.partition] = record.offset
        DEDUP_HITS.inc(result.duplicates)
        EVENTS.labels("duplicate").inc(result.duplicates)
        EVENTS.labels("folded").inc(result.folded)
        EVENTS.labels("dead_lettered").inc(len(result.dead_letters))
        EVENTS.labels("forwarded").inc(len(result.forwards))

    def forget_prepared(self) -> None:
        """Drop the slice prepared ahead (on a revocation): its dedup suspects were gathered
        against filters that a partition coming back rebuilds from the store, with the ids
        another worker stored meanwhile. handle() prepares it again."""
        self._prepared = None

    def _watermark_rows(
        self, records: list[Record], max_event_time: dict[int, datetime], now: datetime,
    ) -> list[list[Any]]:
        rows = []
        for partition, event_time in max_event_time.items():
            clock_key = partition_key(partition)
            previous = self.state.clock.get(clock_key)
            if previous is None or datetime.fromisoformat(previous["max_event_time"]) < event_time:
                self.state.clock[clock_key] = {"max_event_time": format_utc(event_time)}
            top = self.watermarks.max_event_time[partition]
            version = max(r.offset for r in records if r.partition == partition)
            mark = self.watermarks.watermark(partition, now, self.started) or top
            rows.append([self.measurements_topic, partition, top, mark, version])
        return rows

    async def _dead_letter(self, outbox: Outbox, letter: DeadLetter) -> None:
        record = letter.record
        DEAD_LETTERS.labels(field_label(letter.reason.split(":", 1)[0])).inc()
        log.warning(
            "dead-lettered %s[%d]@%d%s: %s", record.topic, record.partition, record.offset,
            "" if letter.index is None else f" item {letter.index}", letter.reason[:500],
            extra={"measurement_id": _measurement_id(letter.payload), "topic": record.topic,
                   "partition": record.partition, "offset": record.offset, "index": letter.index,
                   "reason": letter.reason[:500]},
        )
        copy = letter.as_letter()
        await outbox.send(self.topics.dead_letters, copy.key, copy.value, headers=copy.headers)


def slices(records: list[Record], max_bytes: int) -> Iterator[list[Record]]:
    """The records in order, in runs of at most `max_bytes` of values (a record larger
    than that is a run of its own)."""
    run: list[Record] = []
    size = 0
    for record in records:
        length = len(record.value or b"")
        if run and size + length > max_bytes:
            yield run
            run, size = [], 0
        run.append(record)
        size += length
    if run:
        yield run


def _measurement_id(value: bytes | None) -> str | None:
    """The id of a dead-lettered record, when it is readable enough to have one."""
    if value is None or len(value) > 1_000_000:
        return None
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):  # RecursionError: deeply nested hostile input
        return None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("id"), str):
        return None
    return str(parsed["id"])[:256]
