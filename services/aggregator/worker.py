"""Composition root of the aggregator: wires catalog, tables, store and Kafka together.

Agents never let an exception escape: Faust would ack the batch and move on. A record
that can never be processed is dead-lettered; anything else (ClickHouse down after
retries, a bug) stops the process with a non-zero code *before* the batch is acked,
so the records are read again after the restart and nothing is lost.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import time
from functools import partial
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import faust
from faust.types import TP
from aiohttp.web import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.aggregator.app import Declarations, declare
from services.aggregator.closing import Closer, SeriesIndex, Watermarks
from services.aggregator.invoice_store import InvoiceStore
from services.aggregator.guard import DeadLetterGuard
from services.aggregator.metrics import (
    CONSUMER_LAG, DEAD_LETTERS, DEDUP_HITS, EVENTS, INGEST_TO_STORED, PERIODS, WATERMARK_LAG,
)
from services.aggregator.quantities import period_totals, timeline_periods
from services.aggregator.processing import (
    SEP,
    TIMELINE,
    TRIAL_SUFFIX,
    copy_timeline,
    DeadLetter,
    Processor,
    Record,
    dead_letter_headers,
    parse_series_table_key,
)
from services.aggregator.writer import StoreWriter, total_row
from services.infra import queries, topics
from services.infra.catalog_view import CatalogView
from services.infra.clickhouse_store import apply_migrations, connect
from services.infra.partitioning import customer_partition, partition_key
from services.settings import Settings
from shared.models.json_types import format_utc
from shared.entitlements import limit_exceeded_events
from shared.metrics_labels import field_label
from shared.models.events import LimitExceededEvent
from shared.periods import period_containing
from shared.resolution import Limits, SubscriptionIndex
from shared.timeline import compact

log = logging.getLogger("metering.aggregator")


BATCH_SIZE = 2000
BATCH_WITHIN_SECONDS = 0.2
EXIT_STORE_FAILURE = 70
COMPACTION_MARGIN = timedelta(days=2)


def fatal(message: str) -> None:
    """Stop at once, without acking: the records are processed again after restart."""
    log.critical("%s; stopping the worker so nothing is acked", message, exc_info=True)
    logging.shutdown()
    os._exit(EXIT_STORE_FAILURE)


def build(settings: Settings, bootstrap: str) -> Declarations:
    d = declare(settings, bootstrap)
    app = d.app
    client = connect(settings)
    apply_migrations(client)
    writer = StoreWriter(client)
    view = CatalogView(settings, bootstrap)
    invoices = InvoiceStore(
        bootstrap, topics.name(settings, topics.INVOICES),
        f"{settings.consumer_group_prefix}-invoice-store", writer,
    )
    started = datetime.now(timezone.utc)
    index = SeriesIndex()
    watermarks = Watermarks(
        lateness=timedelta(seconds=settings.allowed_lateness_seconds),
        idle=timedelta(seconds=settings.idle_seconds),
    )
    closer = Closer(
        catalog=lambda: view.catalog, series=d.series, marks=d.marks, index=index,
        watermarks=watermarks, grace=timedelta(seconds=settings.grace_seconds),
        partitions=settings.partitions, started=started,
    )
    # The catalog's subscription_at scans every subscription; this index is rebuilt per catalog change.
    subscription_at = SubscriptionIndex(lambda: view.catalog, lambda: view.version)
    processor = Processor(
        catalog=lambda: view.catalog,
        refresh_catalog=lambda: view.sync(10.0),
        limits=Limits(
            max_future=timedelta(seconds=settings.max_future_seconds),
            dedup_window=timedelta(days=settings.dedup_window_days),
        ),
        series=d.series, seen=d.seen, closed_through=closer.closed_through,
        subscription_at=subscription_at,
    )
    measurements_topic = topics.name(settings, topics.MEASUREMENTS)
    state: dict[str, Any] = {"index_ready": False, "owned": set(), "housekept": 0.0, "processed": {}}
    guard = DeadLetterGuard(settings.dead_letter_max_ratio, settings.dead_letter_min_records, 60.0)
    window = timedelta(days=settings.dedup_window_days)

    @app.task  # type: ignore[untyped-decorator]
    async def start_side_services() -> None:
        view.start()
        invoices.start()

    @app.agent(d.measurements)
    async def fold_measurements(stream: Any) -> None:
        # Records are judged against the catalog: before the view has loaded it (a task
        # started with the worker), known customers would read as unknown and be
        # dead-lettered. After a crash that is a replay of records whose state never
        # reached the changelog, so their usage would be lost (the SIGKILL test saw it).
        while not view.ready:
            await asyncio.sleep(0.05)
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN_SECONDS):
            try:
                await handle_batch(events)
            except BaseException:
                fatal("measurement batch failed")

    async def handle_batch(events: list[Any]) -> None:
        ensure_index()
        now = datetime.now(timezone.utc)
        records = [_record(e.message) for e in events]
        result = processor.process(records)
        for letter in result.dead_letters:
            await send_dead_letter(letter)
        for customer, sub_key, period_index in result.late_periods:
            closer.mark_late(customer, sub_key, period_index)
        for record in records:
            watermarks.observe(record.partition, result.max_event_time.get(record.partition), now)
        totals = []
        for key in result.dirty_series:
            index.add(key)
            totals.extend(store_rows(key, now))
        marks = []
        for partition, event_time in result.max_event_time.items():
            clock_key = partition_key(partition)
            previous = d.clock.get(clock_key)
            if previous is None or _parse(previous["max_event_time"]) < event_time:
                d.clock[clock_key] = {"max_event_time": format_utc(event_time)}
            top = watermarks.max_event_time[partition]
            version = max(r.offset for r in records if r.partition == partition)
            mark = watermarks.watermark(partition, now, started) or top
            marks.append([measurements_topic, partition, top, mark, version])
        await publish_limit_crossings({parse_series_table_key(k)[0] for k in result.dirty_series}, now)
        writer.write_raw(result.raw_rows)
        writer.write_totals(totals)
        writer.write_watermarks(marks)
        stop_reason = guard.record(len(records), len(result.dead_letters))
        if stop_reason is not None:
            fatal(f"dead-letter limit reached: {stop_reason}")
        stored_at = datetime.now(timezone.utc)
        for record in records:
            INGEST_TO_STORED.observe(max((stored_at - record.timestamp).total_seconds(), 0.0))
            last = state["processed"].get(record.partition, -1)
            if record.offset > last:
                state["processed"][record.partition] = record.offset
        DEDUP_HITS.inc(result.duplicates)
        EVENTS.labels("duplicate").inc(result.duplicates)
        EVENTS.labels("folded").inc(result.folded)
        EVENTS.labels("dead_lettered").inc(len(result.dead_letters))

    def store_rows(key: str, now: datetime) -> list[list[Any]]:
        customer, meter, series, start = parse_series_table_key(key)
        state_ = d.series.get(key)
        if state_ is None:
            return []
        if start != TIMELINE:
            # One store row per period: the pre-trial and post-trial parts together.
            plain = key.removesuffix(TRIAL_SUFFIX)
            parts = [s for s in (d.series.get(plain), d.series.get(plain + TRIAL_SUFFIX)) if s is not None]
            period_start = _parse(start.removesuffix(TRIAL_SUFFIX))
            value = period_totals(
                view.catalog.meters, d.series, [plain, plain + TRIAL_SUFFIX], period_start, period_start,
                _parse(state_["end"]),
            ).get(meter, {}).get(series)
            if value is None:
                return []
            merged = {"value": str(value), "events": sum(p["events"] for p in parts),
                      "applied": max(p["applied"] for p in parts)}
            return [total_row(customer, meter, series, period_start, _parse(state_["end"]), merged)]
        closed = partial(closer.closed_through, customer)
        return [
            [customer, meter, series, period.start, period.end, value, len(state_["points"]), state_["applied"]]
            for period, value in timeline_periods(view.catalog, key, state_, now, closed)
        ]

    async def publish_limit_crossings(customers: set[str], now: datetime) -> None:
        """One LimitExceeded event per customer, feature and period, at the first crossing."""
        catalog = view.catalog
        for customer in customers:
            subscription = subscription_at(customer, now)
            plan = catalog.price_plans.get(subscription.price_plan_name) if subscription else None
            if subscription is None or plan is None or not plan.limits:
                continue
            period = period_containing(subscription.start_time, plan.period, now, subscription.end_time)
            usage = {
                meter: sum(by_series.values(), Decimal(0))
                for meter, by_series in period_totals(
                    catalog.meters, d.series, index.of(customer), subscription.start_time, period.start, period.end, now
                ).items()
            }
            mark = d.marks.get(customer) or {"closed": {}, "late": []}
            reported = {(customer, f, datetime.fromisoformat(s)) for f, s in mark.get("limits", [])}
            crossings = limit_exceeded_events(plan, subscription, period, usage, reported)
            for crossing in crossings:
                event = LimitExceededEvent(
                    customer_name=customer, price_plan_name=plan.name, feature=crossing.feature,
                    period_start=crossing.period_start, period_end=crossing.period_end,
                    limit=crossing.limit, usage=crossing.usage, detected_at=now,
                )
                await d.limit_events.send(key=customer.encode(), value=event.model_dump_json().encode())
                log.info("limit exceeded: %s %s %s > %s", customer, crossing.feature, crossing.usage, crossing.limit)
            if crossings:
                updated = {**mark, "limits": list(mark.get("limits", [])) + [
                    [c.feature, format_utc(c.period_start)] for c in crossings
                ]}
                d.marks[customer] = updated

    async def observe_lag(owned: set[int], now: datetime) -> None:
        for partition in owned:
            tp = TP(measurements_topic, partition)
            highwater = app.consumer.highwater(tp)
            if highwater is not None:
                processed = state["processed"].get(partition)
                next_offset = processed + 1 if processed is not None else await app.consumer.position(tp)
                CONSUMER_LAG.labels(str(partition)).set(max(highwater - (next_offset or 0), 0))
            mark = watermarks.watermark(partition, now, started)
            if mark is not None:
                WATERMARK_LAG.labels(str(partition)).set((now - mark).total_seconds())

    def resync_store(partitions: set[int]) -> None:
        """Rewrite the absolute totals of series this worker just took over.

        The previous owner may have updated the table (changelog) without reaching the
        store, or written to a store of its own (embedded engine); absolute, versioned
        rows make this rewrite harmless when nothing was missed.
        """
        index.rebuild(list(d.series.keys()))
        now = datetime.now(timezone.utc)
        rows: list[list[Any]] = []
        for customer, keys in index.keys.items():
            if customer_partition(customer, settings.partitions) in partitions:
                for key in keys:
                    rows.extend(store_rows(key, now))
        writer.write_totals(rows)
        log.info("resynced %d total rows for partitions %s", len(rows), sorted(partitions))

    def housekeep(owned: set[int]) -> None:
        """Forget ids older than the dedup window; compact old timeline points."""
        now = datetime.now(timezone.utc)
        # A record may be consumed a while after it was produced (and judged against the
        # window): keep a margin so no accepted point can land before compacted history.
        cutoff = now - window - COMPACTION_MARGIN
        cutoff_text = format_utc(cutoff)
        expired = [
            key for key, value in d.seen.items()
            if value[1] < cutoff_text and customer_partition(key.split(SEP, 1)[0], settings.partitions) in owned
        ]
        for key in expired:
            del d.seen[key]
        catalog = view.catalog
        compacted = 0
        for key, value in list(d.series.items()):
            customer, meter_name, _, period = parse_series_table_key(key)
            meter = catalog.meters.get(meter_name)
            if period != TIMELINE or meter is None or meter.reporting_method == "total":
                continue
            if customer_partition(customer, settings.partitions) not in owned:
                continue
            oldest = oldest_open_start(customer, cutoff)
            if oldest is not None:
                timeline = copy_timeline(value)
                before = len(timeline["points"])
                compact(meter, timeline, oldest)
                if len(timeline["points"]) != before:
                    d.series[key] = timeline
                    compacted += 1
        if expired or compacted:
            log.info("housekeeping: %d ids expired, %d timelines compacted", len(expired), compacted)

    def oldest_open_start(customer: str, cutoff: datetime) -> datetime | None:
        """Start of the oldest period a measurement inside the dedup window can touch."""
        subscription = view.catalog.subscription_at(customer, cutoff)
        if subscription is None:
            return None
        plan = view.catalog.price_plans.get(subscription.price_plan_name)
        if plan is None:
            return None
        return period_containing(subscription.start_time, plan.period, cutoff, subscription.end_time).start

    async def send_dead_letter(letter: DeadLetter) -> None:
        DEAD_LETTERS.labels(field_label(letter.reason.split(":", 1)[0])).inc()
        log.warning(
            "dead-lettered %s[%d]@%d: %s", letter.record.topic, letter.record.partition,
            letter.record.offset, letter.reason,
            extra={"measurement_id": _measurement_id(letter.record.value), "topic": letter.record.topic,
                   "partition": letter.record.partition, "offset": letter.record.offset, "reason": letter.reason},
        )
        await d.dead_letters.send(
            key=letter.record.key, value=letter.record.value, headers=dead_letter_headers(letter)
        )

    def ensure_index() -> None:
        if not state["index_ready"]:
            index.rebuild(list(d.series.keys()))
            for key, value in d.clock.items():
                partition = int(str(key).rsplit(":", 1)[1])
                watermarks.observe(partition, _parse(value["max_event_time"]), started)
            state["index_ready"] = True

    @app.timer(interval=0.5)  # type: ignore[untyped-decorator]
    async def close_periods() -> None:
        if app.rebalancing or not view.ready:
            return
        try:
            ensure_index()
            owned = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == measurements_topic}
            gained = owned - state["owned"]
            state["owned"] = owned
            if gained:
                resync_store(gained)
            if time.monotonic() - state["housekept"] >= settings.housekeeping_seconds:
                housekeep(owned)
                state["housekept"] = time.monotonic()
            now = datetime.now(timezone.utc)
            await observe_lag(owned, now)
            for event in closer.tick(owned, now):
                PERIODS.labels(event.reason).inc()
                log.info(
                    "period %s %s..%s of %s: %s", event.reason, format_utc(event.period_start),
                    format_utc(event.period_end), event.customer_name, event.totals,
                )
                await d.period_totals.send(
                    key=event.customer_name.encode(), value=event.model_dump_json().encode()
                )
                # A closed period's gauge integral now runs to the period end, not
                # to the latest point: rewrite those rows with their final value.
                finals = [
                    row for key in index.of(event.customer_name)
                    if parse_series_table_key(key)[3] == TIMELINE for row in store_rows(key, now)
                ]
                writer.write_totals(finals)
        except BaseException:
            fatal("period close failed")

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "alive"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        checks = {
            "catalog": view.ready,
            "store": writer.ping(),
            "invoice_store": invoices.failed is None,
            "assigned": not app.rebalancing and bool(app.assignor.assigned_actives()),
        }
        status = 200 if all(checks.values()) else 503
        return web.json({"ready": status == 200, "checks": checks}, status=status)

    api_key = settings.api_key.get_secret_value().encode() if settings.api_key else None

    @app.page("/store/{name}")
    async def store_read(web: Any, request: Any, name: str) -> Any:
        """Named read queries over the store this process owns (see infra/queries.py)."""
        if api_key is not None:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), api_key):
                return web.json({"error": "unauthorized"}, status=401)
        query = queries.QUERIES.get(name)
        if query is None:
            return web.json({"error": f"unknown query {name!r}"}, status=404)
        params = dict(request.query)
        try:
            return web.json(writer.read(lambda client: query(client, params)))
        except queries.QueryError as error:
            return web.json({"error": "invalid query", "reason": str(error)}, status=400)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def stop_side_services(app_: Any, **kwargs: Any) -> None:
        invoices.stop()
        view.stop()

    return d


def _measurement_id(value: bytes | None) -> str | None:
    """The id of a dead-lettered record, when it is readable enough to have one."""
    try:
        parsed = json.loads(value or b"")
    except (ValueError, UnicodeDecodeError):
        return None
    return str(parsed.get("id")) if isinstance(parsed, dict) and "id" in parsed else None


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _record(message: Any) -> Record:
    timestamp = datetime.fromtimestamp(message.timestamp, tz=timezone.utc)
    return Record(
        topic=message.topic, partition=message.partition, offset=message.offset,
        key=message.key, value=message.value, timestamp=timestamp,
    )


def run(settings: Settings, bootstrap: str) -> None:
    declarations = build(settings, bootstrap)
    worker = faust.Worker(declarations.app, loglevel="WARNING", quiet=True, override_logging=False)
    sys.argv = sys.argv[:1]
    worker.execute_from_commandline()
