"""`python -m bench [--quick]`: every figure of docs/benchmarks.md, measured in one run.

Phases, each on the same local Apache Kafka broker and the embedded ClickHouse engine:
  ceiling  raw confluent-kafka produce / consume of ~150-byte records
  fold     the aggregator alone folding a backlog of envelopes from the measurements
           topic (the Kafka-native path), beside the raw consume ceiling (bench/fold.py)
  ingest   the ingest service alone: events/s accepted over HTTP, batches of 1,000
  e2e      the whole pipeline: p50/p99 event-to-queryable at a fixed 10,000 events/s,
           then sustained events/s from HTTP to totals in ClickHouse
  memory   aggregator peak RSS holding N customers x 5 meters of open-period state
  rating   time from N PeriodTotals to N invoices on the invoices topic
  dedup    aggregator peak RSS with N unique ids in the dedup window (bench/dedup_memory.py)
  hostile  records/s the aggregator dead-letters from a hostile backlog while it folds
           the valid measurements mixed in (bench/hostile_load.py)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from bench import ceiling as ceiling_mod
from bench import dedup_memory, fold, hostile_load, stream_ceiling
from bench.catalog import METERS, PLAN_NAME, publish_bench_catalog
from bench.load import ClientPlan, percentile, run_clients
from bench.pipeline import (
    IngestOnlyStack,
    LagReader,
    aggregator_lag,
    auth,
    bench_settings,
    produce_all,
    store_totals,
    wait_accepted,
)
from bench.procs import CpuMeter, machine, memory_kib
from bench.report import Row, render, write
from services.infra import topics
from services.infra.kafka_broker import LocalKafkaBroker
from services.infra.kafka_config import consumer_config, producer_config
from services.infra.stack import Stack
from services.infra.topics import ensure_topics
from shared.models.invoice import PeriodTotals
from shared.models.json_types import format_utc

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PHASES = ("ceiling", "fold", "ingest", "e2e", "memory", "rating", "dedup", "hostile")
log = logging.getLogger("bench")


@dataclass(frozen=True)
class Sizes:
    ceiling_messages: int
    stream_messages: int  # the Faust consume ceiling
    ingest_seconds: float
    ingest_clients: int
    ingest_concurrency: int
    e2e_customers: int
    latency_rate: int
    low_rate: int  # a load below the pipeline's capacity: the latency floor
    low_seconds: float
    latency_seconds: float
    sustained_events: int
    big_customers: int  # memory and rating
    hostile_records: int
    dedup_ids: int
    dedup_stream: int  # new measurements folded beside dedup_stream / 2 retries of old ids
    fold_measurements: int  # the envelope backlog of the fold phase


# The offered 10k/s load and the sustained run are sized so that the whole run ends in
# well under an hour here, where the aggregator folds well below 10k events/s (see
# docs/benchmarks.md); --latency-seconds / --sustained-events make them longer.
FULL = Sizes(
    ceiling_messages=1_000_000, stream_messages=100_000, ingest_seconds=20.0, ingest_clients=2, ingest_concurrency=4,
    e2e_customers=1_000, latency_rate=10_000, low_rate=500, low_seconds=30.0, latency_seconds=10.0,
    sustained_events=200_000,
    big_customers=100_000, hostile_records=20_000, dedup_ids=10_000_000, dedup_stream=100_000,
    fold_measurements=1_000_000,
)
QUICK = Sizes(
    ceiling_messages=100_000, stream_messages=20_000, ingest_seconds=4.0, ingest_clients=2, ingest_concurrency=4,
    e2e_customers=100, latency_rate=10_000, low_rate=500, low_seconds=6.0, latency_seconds=5.0, sustained_events=60_000,
    big_customers=2_000, hostile_records=1_000, dedup_ids=200_000, dedup_stream=6_000, fold_measurements=50_000,
)
BATCH = 1_000


def utc_text(at: datetime) -> str:
    return format_utc(at)


class Bench:
    def __init__(self, sizes: Sizes, root: Path, profile: Path | None, timeout: float,
                 ingest_processes: int | None = None) -> None:
        self.sizes = sizes
        self.ingest_processes = ingest_processes  # None: the setting's default (the CPUs)
        self.root = root
        self.profile = profile
        self.timeout = timeout
        self.results: dict[str, Any] = {}
        self.broker: LocalKafkaBroker | None = None
        self._profilers: list[subprocess.Popen[bytes]] = []

    # ---- helpers --------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        assert self.broker is not None
        return self.broker.bootstrap_servers

    def start_profiling(self, phase: str, pids: dict[str, int], seconds: float) -> None:
        """py-spy (if --profile): sample each service for the phase, as collapsed stacks."""
        if self.profile is None:
            return
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.profile.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            out = self.profile / f"{phase}-{name}.txt"
            self._profilers.append(subprocess.Popen(
                [spy, "record", "--pid", str(pid), "--duration", str(max(int(seconds), 1)), "--rate", "50",
                 "--nonblocking", "--subprocesses", "--format", "raw", "--output", str(out)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))

    def stop_profiling(self) -> None:
        for spy in self._profilers:
            try:
                spy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                spy.kill()
        self._profilers.clear()

    def stack_pids(self, stack: Stack) -> dict[str, int]:
        pids = {name: child.pid for name, child in stack.children.items()}  # read again after a restart
        if self.broker is not None and self.broker.process is not None:
            pids["broker"] = self.broker.process.pid
        return pids

    # ---- phases ---------------------------------------------------------------

    def ceiling(self) -> None:
        result = ceiling_mod.measure(self.bootstrap, self.sizes.ceiling_messages, partitions=4)
        self.results["ceiling"] = result.__dict__
        log.info("ceiling: produce %.0f/s, consume %.0f/s", result.produce_per_s, result.consume_per_s)
        # What the stream framework itself can consume: the aggregator can fold no faster.
        stream = stream_ceiling.measure(self.bootstrap, self.sizes.stream_messages, partitions=4)
        self.results["stream_ceiling"] = stream
        log.info("stream ceiling: %s", stream)

    def ingest(self) -> None:
        sizes = self.sizes
        settings = bench_settings(self.bootstrap, self.root, "ingest", self.ingest_processes)
        now = datetime.now(UTC)
        start = now - timedelta(days=1)
        event_time = utc_text(now - timedelta(seconds=5))
        with IngestOnlyStack(settings, log_dir=settings.data_dir / "logs") as stack:
            customers = publish_bench_catalog(stack.settings, stack.bootstrap, sizes.e2e_customers, start)
            wait_accepted(stack, customers[-1], "ingest", event_time)
            pids = self.stack_pids(stack)
            plans = self._plans(stack, customers, "ingest", event_time, duration=sizes.ingest_seconds)
            cpu = CpuMeter(pids)
            cpu.reset_at(plans[0].start_at)
            self.start_profiling("ingest", {"ingest": pids["ingest"]}, sizes.ingest_seconds + 6)
            results = run_clients(plans)
            cores = cpu.cores()
            self.stop_profiling()
        accepted = sum(r.accepted_events for r in results)
        began = min(r.started for r in results)
        ended = max(r.ended for r in results)
        wall = ended - began
        latencies = [x for r in results for x in r.latencies]
        failures = sum(sum(r.failed.values()) for r in results)
        client_cpu = sum(r.cpu_seconds for r in results)
        self.results["ingest"] = {
            "events_per_s": accepted / wall, "accepted_events": accepted, "seconds": wall,
            "requests": len(latencies), "failed_requests": failures,
            "failed_by_status": {str(k): v for r in results for k, v in r.failed.items()},
            "p50_ms": percentile(latencies, 0.50) * 1000, "p99_ms": percentile(latencies, 0.99) * 1000,
            "clients": sizes.ingest_clients, "concurrency_per_client": sizes.ingest_concurrency,
            "client_cpu_cores": client_cpu / wall, "server_cpu_cores": cores,
            "customers": sizes.e2e_customers, "ingest_processes": settings.http.ingest_processes,
        }
        log.info("ingest: %s", self.results["ingest"])

    def _plans(self, stack: Stack, customers: list[str], run: str, event_time: str,
               duration: float | None = None, events: int | None = None) -> list[ClientPlan]:
        sizes = self.sizes
        assert stack.settings.http.api_key is not None
        start_at = time.time() + 4.0
        requests = None
        if events is not None:
            requests = -(-events // (BATCH * sizes.ingest_clients))
        return [
            ClientPlan(
                client=i, url=stack.ingest_url, api_key=stack.settings.http.api_key.get_secret_value(),
                customers=customers, batch=BATCH, concurrency=sizes.ingest_concurrency,
                event_time=event_time, run=f"{run}-{uuid.uuid4().hex[:6]}", start_at=start_at,
                duration=duration, requests=requests,
            )
            for i in range(sizes.ingest_clients)
        ]

    def e2e(self) -> None:
        sizes = self.sizes
        settings = bench_settings(self.bootstrap, self.root, "e2e", self.ingest_processes)
        now = datetime.now(UTC)
        start = now - timedelta(days=1)
        with Stack(settings, log_dir=settings.data_dir / "logs") as stack:
            names = publish_bench_catalog(stack.settings, stack.bootstrap, sizes.e2e_customers + 1, start)
            probe, customers = names[-1], names[:-1]
            event_time = utc_text(datetime.now(UTC))
            wait_accepted(stack, customers[-1], "e2e", event_time)
            wait_accepted(stack, probe, "e2e-probe", event_time)
            pids = self.stack_pids(stack)
            lag = aggregator_lag(stack)
            try:
                if lag.wait_zero(120) is None:
                    raise RuntimeError("aggregator never caught up before the latency phase")
                expected: dict[str, int] = {customers[-1]: 0, probe: 0}
                # -- a load the pipeline keeps up with: the latency floor of the design
                low = asyncio.run(fixed_load(stack, customers, probe, sizes.low_rate, sizes.low_seconds,
                                             expected, self.timeout))
                low["caught_up"] = lag.wait_zero(self.timeout) is not None
                self.results["latency_low"] = low
                log.info("latency at %d/s: %s", sizes.low_rate, low)
                # -- fixed offered load: event-to-queryable latency
                cpu = CpuMeter(pids)
                self.start_profiling("latency", {"aggregator": pids["aggregator"]}, sizes.latency_seconds)
                before = scrape_histogram(stack)
                latency = asyncio.run(fixed_load(stack, customers, probe, sizes.latency_rate,
                                                 sizes.latency_seconds, expected, self.timeout))
                caught_up = lag.wait_zero(self.timeout)
                after = scrape_histogram(stack)
                latency["server_cpu_cores"] = cpu.cores()
                self.stop_profiling()
                latency["histogram_p50_s"] = histogram_quantile(before, after, 0.50)
                latency["histogram_p99_s"] = histogram_quantile(before, after, 0.99)
                latency["caught_up"] = caught_up is not None
                self.results["latency"] = latency
                log.info("latency: %s", latency)
                # -- sustained: as fast as the pipeline goes, HTTP to queryable
                event_time = utc_text(datetime.now(UTC))
                plans = self._plans(stack, customers, "e2e", event_time, events=sizes.sustained_events)
                backlog = lag.lag()  # normally 0: the latency phase drained
                cpu = CpuMeter(pids)
                cpu.reset_at(plans[0].start_at)
                self.start_profiling("e2e", {k: v for k, v in pids.items() if k != "broker"},
                                     sizes.sustained_events / 40_000 + 10)
                results = run_clients(plans)
                sent_done = max(r.ended for r in results)
                drained = lag.wait_zero(self.timeout)
                # Not drained in time: count what was folded so far (a lower bound on the rate).
                remaining = 0 if drained is not None else lag.lag()
                cores = cpu.cores()
                self.stop_profiling()
            finally:
                lag.close()
            began = min(r.started for r in results)
            accepted = sum(r.accepted_events for r in results)
            for r in results:
                for customer, count in r.per_customer.items():
                    expected[customer] = expected.get(customer, 0) + count * r.accepted_requests
            checked, mismatches = check_totals(stack, expected, sample=100)
            end = drained if drained is not None else time.time()
            latencies = [x for r in results for x in r.latencies]
            self.results["e2e"] = {
                "events_per_s": (backlog + accepted - remaining) / (end - began), "backlog_at_start": backlog,
                "not_folded_at_timeout": remaining,
                "accepted_events": accepted, "seconds": end - began,
                "http_seconds": sent_done - began, "http_events_per_s": accepted / (sent_done - began),
                "drained": drained is not None, "totals_checked": checked, "totals_mismatched": mismatches,
                "ingest_p50_ms": percentile(latencies, 0.5) * 1000, "ingest_p99_ms": percentile(latencies, 0.99) * 1000,
                "client_cpu_cores": sum(r.cpu_seconds for r in results) / (sent_done - began),
                "server_cpu_cores": cores, "customers": sizes.e2e_customers,
            }
            log.info("e2e: %s", self.results["e2e"])

    def big(self, phases: set[str]) -> None:
        """Memory, then rating, on one pipeline with the big catalog."""
        sizes = self.sizes
        settings = bench_settings(self.bootstrap, self.root, "big")
        now = datetime.now(UTC)
        start = (now - timedelta(days=1)).replace(microsecond=0)
        ensure_topics(settings, self.bootstrap)
        published = time.monotonic()
        names = publish_bench_catalog(settings, self.bootstrap, sizes.big_customers, start)
        catalog_s = time.monotonic() - published
        with Stack(settings, log_dir=settings.data_dir / "logs") as stack:
            pids = self.stack_pids(stack)
            event_time = utc_text(datetime.now(UTC))
            wait_accepted(stack, names[-1], "big", event_time, timeout=300)
            warm = LagReader(stack.bootstrap, f"{stack.settings.kafka.consumer_group_prefix}-aggregator",
                             topics.name(stack.settings, topics.MEASUREMENTS))
            warm.wait_zero(300)  # the readiness probe is folded: the aggregator is up and assigned
            warm.close()
            pids = self.stack_pids(stack)
            if "memory" in phases:
                self._memory(stack, names, pids, catalog_s)
            if "rating" in phases:
                self._rating(stack, names, start, pids)

    def _memory(self, stack: Stack, names: list[str], pids: dict[str, int], catalog_s: float) -> None:
        aggregator = pids["aggregator"]
        before = memory_kib(aggregator)
        measurements = topics.name(stack.settings, topics.MEASUREMENTS)
        group = f"{stack.settings.kafka.consumer_group_prefix}-aggregator"
        event_time = utc_text(datetime.now(UTC))
        producer = Producer(producer_config(
            stack.bootstrap, extra={"compression.type": "lz4", "queue.buffering.max.messages": 1_000_000}
        ))
        values = {"api_calls": "3", "requests": "1", "storage_gb": "12.5", "seats": "7", "bandwidth_gb": "0.75"}
        lag = LagReader(stack.bootstrap, group, measurements)
        cpu = CpuMeter(pids)
        count = len(names) * len(METERS)
        self.start_profiling("memory", {"aggregator": aggregator}, min(count / 5_000, 120))
        began = time.time()
        try:
            for name in names:
                key = name.encode()
                for meter in METERS:
                    value = (f'{{"id":"mem-{name}-{meter["name"]}","meter_name":"{meter["name"]}",'
                             f'"customer_name":"{name}","value":"{values[meter["name"]]}","time":"{event_time}"}}')
                    while True:
                        try:
                            producer.produce(measurements, value.encode(), key)
                            break
                        except BufferError:
                            producer.poll(0.05)
                producer.poll(0)
            if producer.flush(120):
                raise RuntimeError("memory phase: measurements not delivered")
            drained = lag.wait_zero(self.timeout)
            remaining = 0 if drained is not None else lag.lag()
        finally:
            lag.close()
        cores = cpu.cores()
        self.stop_profiling()
        end = drained if drained is not None else time.time()
        aggregator = self.stack_pids(stack)["aggregator"]  # the same process unless it was restarted
        sample = names[:: max(len(names) // 50, 1)]
        complete = sum(1 for name in sample if len(store_totals(stack, name)) == len(METERS))
        memory = memory_kib(aggregator)
        self.results["memory"] = {
            "customers": len(names), "meters": len(METERS), "series": count,
            "peak_rss_mib": memory.get("VmHWM", 0) / 1024, "rss_mib": memory.get("VmRSS", 0) / 1024,
            "rss_before_mib": before.get("VmRSS", 0) / 1024, "drained": drained is not None,
            "rss_anon_before_mib": before.get("RssAnon", 0) / 1024,
            "rss_file_before_mib": before.get("RssFile", 0) / 1024,
            "rss_anon_mib": memory.get("RssAnon", 0) / 1024, "rss_file_mib": memory.get("RssFile", 0) / 1024,
            "not_folded_at_timeout": remaining, "aggregator_pid": aggregator,
            "seconds_to_fold": end - began, "events_per_s_kafka_to_store": (count - remaining) / (end - began),
            "sampled_customers_complete": f"{complete}/{len(sample)}", "server_cpu_cores": cores,
            "catalog_publish_s": catalog_s,
        }
        log.info("memory: %s", self.results["memory"])

    def _rating(self, stack: Stack, names: list[str], start: datetime, pids: dict[str, int]) -> None:
        totals_topic = topics.name(stack.settings, topics.PERIOD_TOTALS)
        invoices_topic = topics.name(stack.settings, topics.INVOICES)
        from shared.periods import period_at_index

        period = period_at_index(start, "monthly", 0)
        watermark = datetime.now(UTC)
        records = []
        for i, name in enumerate(names):
            event = PeriodTotals(
                customer_name=name, price_plan_name=PLAN_NAME, subscription_start=start, period_index=0,
                period_start=period.start, period_end=period.end, reason="closed", watermark=watermark,
                totals={"api_calls": {"": Decimal(1000 * (i % 300))}, "storage_gb": {"": Decimal("12.5")},
                        "seats": {"": Decimal(1 + i % 150)}},
            )
            records.append((name.encode(), event.model_dump_json().encode()))
        consumer = Consumer(consumer_config(stack.bootstrap, f"bench-rating-{uuid.uuid4().hex[:6]}"))
        parts = consumer.list_topics(invoices_topic, timeout=10).topics[invoices_topic].partitions
        consumer.assign([TopicPartition(invoices_topic, p, OFFSET_BEGINNING) for p in parts])
        consumer.consume(num_messages=1, timeout=1.0)
        producer = Producer(producer_config(stack.bootstrap, extra={"queue.buffering.max.messages": 1_000_000}))
        cpu = CpuMeter(pids)
        self.start_profiling("rating", {"rater": pids["rater"]}, min(len(names) / 2_000, 120))
        began = time.time()
        produced = produce_all(producer, totals_topic, records, "rating phase: PeriodTotals")
        seen: set[bytes] = set()
        first: bytes | None = None
        deadline = time.monotonic() + self.timeout
        while len(seen) < len(names) and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=10_000, timeout=0.5):
                if message.error() is None and message.key() is not None:
                    seen.add(message.key() or b"")
                    if first is None:
                        first = message.value()
        ended = time.time()
        consumer.close()
        cores = cpu.cores()
        self.stop_profiling()
        sample = json.loads(first) if first else {}
        done = len(seen) >= len(names)
        self.results["rating"] = {
            "customers": len(names), "invoices": len(seen), "complete": done,
            "seconds": ended - began if done else None, "produce_seconds": produced - began,
            "invoices_per_s": len(seen) / (ended - began),
            "sample_invoice_lines": [line["type"] for line in sample.get("lines", [])],
            "sample_invoice_total": sample.get("total"), "server_cpu_cores": cores,
        }
        log.info("rating: %s", self.results["rating"])

    def fold(self) -> None:
        self.results["fold"] = fold.measure(
            self.bootstrap, self.root, self.sizes.e2e_customers, self.sizes.fold_measurements, self.timeout,
            profile=lambda pids, seconds: self.start_profiling("fold", pids, seconds))
        self.stop_profiling()
        log.info("fold: %s", self.results["fold"])
        # The same with the ids in the store (what a ClickHouse server gives by default):
        # the state log then carries no id, which is most of its cost.
        self.results["fold_store"] = fold.measure(
            self.bootstrap, self.root, self.sizes.e2e_customers, self.sizes.fold_measurements, self.timeout,
            dedup_ids="store")
        log.info("fold (ids in the store): %s", self.results["fold_store"])

    def dedup(self) -> None:
        sizes = self.sizes
        self.results["dedup"] = dedup_memory.measure(
            self.bootstrap, self.root, sizes.dedup_ids, new=sizes.dedup_stream, retries=sizes.dedup_stream // 2)

    def hostile(self) -> None:
        records = self.sizes.hostile_records
        self.results["hostile_small"] = hostile_load.measure(self.bootstrap, self.root, records, heavy=False)
        self.results["hostile"] = hostile_load.measure(self.bootstrap, self.root, records, heavy=True)

    # ---- the whole run ------------------------------------------------------------

    def run(self, phases: set[str]) -> None:
        self.broker = LocalKafkaBroker(self.root / "kafka").start()
        try:
            steps = [("ceiling", self.ceiling), ("fold", self.fold), ("ingest", self.ingest), ("e2e", self.e2e),
                     ("dedup", self.dedup),
                     ("hostile", self.hostile)]
            for name, step in steps:
                if name in phases:
                    self._guarded(name, step)
            if phases & {"memory", "rating"}:
                self._guarded("big", lambda: self.big(phases))
        finally:
            self.broker.stop()

    def _guarded(self, name: str, step: Any) -> None:
        started = time.monotonic()
        try:
            step()
        except Exception as error:  # one failed phase still leaves the others' figures
            log.exception("phase %s failed", name)
            self.results.setdefault("errors", {})[name] = repr(error)
        self.results.setdefault("phase_seconds", {})[name] = round(time.monotonic() - started, 1)


async def fixed_load(stack: Stack, customers: list[str], probe: str, rate: int, seconds: float,
                     expected: dict[str, int], patience: float) -> dict[str, Any]:
    """Open-loop offered load of `rate` events/s in batches of 1,000; one probe event per batch.

    A poller reads the probe customer's total through the aggregator's read API every
    25 ms; a probe's latency runs from the moment its request was sent to the first
    read that includes it (HTTP in -> queryable in ClickHouse). The poller waits up to
    `patience` seconds after the last send, so a pipeline slower than the offered load
    shows as a long latency rather than as no figure.
    """
    interval = BATCH / rate
    batches = max(int(seconds * rate / BATCH), 1)
    event_time = utc_text(datetime.now(UTC))
    run = f"lat-{uuid.uuid4().hex[:6]}"
    bodies = []
    for k in range(batches):
        owners = [customers[(k * BATCH + i) % len(customers)] for i in range(BATCH - 1)] + [probe]
        events = [{"id": f"{run}-{k}-{i}", "meter_name": "api_calls", "customer_name": owner, "value": 1,
                   "time": event_time} for i, owner in enumerate(owners)]
        events[-1]["id"] = f"{run}-probe-{k}"
        for owner in owners:
            expected[owner] = expected.get(owner, 0) + 1
        bodies.append(json.dumps(events).encode())
    sent: list[float] = []
    seen_at: list[float] = []
    statuses: list[int] = []
    http_latency: list[float] = []
    headers = {**auth(stack.settings), "Content-Type": "application/json"}
    baseline = _probe_count(await _get_totals(stack, probe))
    async with httpx.AsyncClient(base_url=stack.ingest_url, headers=headers, timeout=60) as client, \
            httpx.AsyncClient(base_url=stack.aggregator_url, headers=auth(stack.settings), timeout=30) as reader:

        async def post(body: bytes) -> None:
            began = time.perf_counter()
            response = await client.post("/measurements/batch", content=body)
            http_latency.append(time.perf_counter() - began)
            statuses.append(response.status_code)

        async def poll() -> None:
            deadline = time.monotonic() + seconds + patience
            while len(seen_at) < batches and time.monotonic() < deadline:
                response = await reader.get("/store/totals", params={"customer_name": probe})
                at = time.time()
                count = _probe_count(response.json()) - baseline
                while len(seen_at) < min(count, len(sent)):
                    seen_at.append(at)
                await asyncio.sleep(0.025)

        poller = asyncio.create_task(poll())
        tasks = []
        t0 = time.monotonic()
        for k, body in enumerate(bodies):
            delay = t0 + k * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent.append(time.time())
            tasks.append(asyncio.create_task(post(body)))
        offered_seconds = time.monotonic() - t0
        await asyncio.gather(*tasks)
        await poller
    # Probes never seen are missing from seen_at; the percentiles below are only given when none is.
    latencies = [seen - at for at, seen in zip(sent, seen_at, strict=False)]
    return {
        "offered_events_per_s": batches * BATCH / max(offered_seconds + interval, 1e-9),
        "target_events_per_s": rate, "seconds": seconds, "batches": batches, "probes_seen": len(seen_at),
        "p50_s": percentile(latencies, 0.5) if len(latencies) == batches else None,
        "p99_s": percentile(latencies, 0.99) if len(latencies) == batches else None,
        "max_s": max(latencies) if latencies else None,
        "non_202": sum(1 for s in statuses if s != 202),
        "ingest_p50_ms": percentile(http_latency, 0.5) * 1000, "ingest_p99_ms": percentile(http_latency, 0.99) * 1000,
    }


async def _get_totals(stack: Stack, customer: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(f"{stack.aggregator_url}/store/totals", params={"customer_name": customer},
                                    headers=auth(stack.settings))
        response.raise_for_status()
        rows: list[dict[str, Any]] = response.json()
        return rows


def _probe_count(rows: list[dict[str, Any]]) -> int:
    return int(sum(Decimal(r["value"]) for r in rows if r["meter_name"] == "api_calls"))


def check_totals(stack: Stack, expected: dict[str, int], sample: int) -> tuple[int, int]:
    """Stored api_calls totals of a sample of customers equal what was accepted."""
    names = sorted(expected)
    step = max(len(names) // sample, 1)
    mismatched = 0
    checked = 0
    for name in names[::step]:
        rows = store_totals(stack, name)
        if _probe_count(rows) != expected[name]:
            mismatched += 1
            log.warning("totals of %s: stored %s, expected %s", name, _probe_count(rows), expected[name])
        checked += 1
    return checked, mismatched


def scrape_histogram(stack: Stack) -> dict[float, float]:
    text = httpx.get(f"{stack.aggregator_url}/metrics", timeout=10).text
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("metering_aggregator_ingest_to_stored_seconds_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
    return buckets


def histogram_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float | None:
    """Prometheus-style quantile (linear within a bucket) of the observations between scrapes."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0
    if total <= 0:
        return None
    rank = q * total
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if bound == float("inf"):
                return previous_bound
            share = (rank - previous_count) / max(count - previous_count, 1e-9)
            return previous_bound + (bound - previous_bound) * share
        previous_bound, previous_count = bound, count
    return previous_bound


def rows(results: dict[str, Any], sizes: Sizes) -> list[Row]:
    c = results.get("ceiling", {})
    produce, consume = c.get("produce_per_s"), c.get("consume_per_s")
    both = min(produce, consume) if produce and consume else None
    i, lat, e, m, r = (results.get(k, {}) for k in ("ingest", "latency", "e2e", "memory", "rating"))
    low = results.get("latency_low", {})
    stream = results.get("stream_ceiling", {})
    stream_rate = stream.get("per_s")

    def ratio(value: float | None, ceiling: float | None) -> float | None:
        return value / ceiling if value and ceiling else None

    mib = 1024.0
    return [
        Row("ceiling", "Ceiling: raw produce (~150 B records)", produce, "msg/s", None, None, None,
            f"{c.get('messages', 0):,} records, acks=all, lz4"),
        Row("ceiling_consume", "Ceiling: raw consume", consume, "msg/s", None, None, None, "4 partitions"),
        Row("ceiling_stream", "Ceiling: Faust stream consume, no work", stream_rate, "msg/s",
            ratio(stream_rate, consume), None, None,
            f"{stream.get('records', 0):,} records, take_events(2000), {stream.get('cpu_cores', 0):.2f} cores"),
        _fold_row("fold", "", results.get("fold", {}), consume),
        _fold_row("fold_store", ", ids in the store", results.get("fold_store", {}), consume),
        Row("ingest", "Ingest: HTTP accepted (batches of 1,000)", i.get("events_per_s"), "events/s",
            ratio(i.get("events_per_s"), produce), 100_000, ">=",
            f"{i.get('ingest_processes', 1)} ingest processes, {i.get('clients')}x{i.get('concurrency_per_client')} "
            f"clients, client CPU {i.get('client_cpu_cores', 0):.2f} cores"),
        Row("ingest_p50", "Ingest: request latency p50", i.get("p50_ms"), "ms", None, None, None, "per batch of 1,000"),
        Row("ingest_p99", "Ingest: request latency p99", i.get("p99_ms"), "ms", None, None, None, "per batch of 1,000"),
        Row("e2e", "End to end: sustained HTTP -> queryable", e.get("events_per_s"), "events/s",
            ratio(e.get("events_per_s"), both), 50_000, ">=",
            f"{e.get('accepted_events', 0):,} events, {e.get('customers', 0):,} customers, "
            f"{_fmt(ratio(e.get('events_per_s'), stream_rate))} x Faust ceiling"
            + ("" if e.get("drained", True) else f"; NOT drained in {e.get('seconds', 0):.0f} s (folded so far)")),
        Row("e2e_p50", "End to end: event-to-queryable p50 @10k/s", lat.get("p50_s"), "s", None, None, None,
            f"{lat.get('batches', 0)} probes, polled every 25 ms"),
        Row("e2e_p99", "End to end: event-to-queryable p99 @10k/s", lat.get("p99_s"), "s", None, 2.0, "<=",
            f"histogram p99 {_fmt(lat.get('histogram_p99_s'))} s (produce -> stored)"),
        Row("e2e_low_p50", f"End to end: event-to-queryable p50 @{sizes.low_rate}/s", low.get("p50_s"), "s",
            None, None, None, f"{low.get('batches', 0)} probes, below capacity"),
        Row("e2e_low_p99", f"End to end: event-to-queryable p99 @{sizes.low_rate}/s", low.get("p99_s"), "s",
            None, None, None, f"{low.get('batches', 0)} probes, below capacity"),
        Row("rating", f"Rating: close + invoice {r.get('customers', sizes.big_customers):,} customers",
            r.get("seconds"), "s", ratio(r.get("invoices_per_s"), both), 60.0, "<=",
            f"{r.get('invoices_per_s', 0):,.0f} invoices/s, 3-component plan"),
        Row("memory", f"Memory: aggregator peak RSS, {m.get('customers', sizes.big_customers):,} x 5 series",
            m.get("peak_rss_mib") if m.get("drained") else None, "MiB", None, 1024.0, "<=",
            f"RSS after fold {m.get('rss_mib', 0) / mib:.2f} GiB" if m.get("drained") else
            f"NOT folded in time: {m.get('not_folded_at_timeout', 0):,} of {m.get('series', 0):,} left"),
        _dedup_row(results.get("dedup", {}), sizes),
        *[_hostile_row(key, results.get(key, {}), mix) for key, mix in
          (("hostile_small", "small bad records"), ("hostile", "with 100 kB-1 MB records"))],
    ]


def _fold_row(key: str, variant: str, f: dict[str, Any], consume: float | None) -> Row:
    return Row(
        key, f"Aggregator: fold from Kafka envelopes{variant}", f.get("per_s"), "meas/s",
        f["per_s"] / consume if f.get("per_s") and consume else None, 60_000, ">=",
        f"{f.get('measurements', 0):,} in {f.get('envelopes', 0):,} envelopes, "
        f"{f.get('totals_exact', 0)} of {f.get('totals_checked', 0)} totals exact, "
        f"{f.get('aggregator_cpu_cores', 0):.2f} cores, CPU {f.get('cpu_us_per_measurement', 0):.1f} µs/meas "
        f"({f.get('python_threads_cpu_us_per_measurement', 0):.1f} in Python threads), "
        f"METERING_DEDUP_IDS={f.get('dedup_ids', '-')}; {f.get('hot_path', 'hot path not recorded')}"
        + ("" if f.get("drained", True) else "; NOT drained (folded so far)"),
    )


def _dedup_row(d: dict[str, Any], sizes: Sizes) -> Row:
    return Row(
        "dedup_memory",
        f"Memory: aggregator peak RSS, {d.get('ids_in_window', sizes.dedup_ids):,} ids in the dedup window",
        d.get("peak_rss_mib") if d.get("drained") else None, "MiB", None, 1024.0, "<=",
        f"METERING_DEDUP_IDS=store; {d.get('retries_of_old_ids', 0):,} retries of old ids, "
        f"{d.get('dedup_hits', 0):,.0f} caught; "
        f"{d.get('totals_exact', 0)} of {d.get('totals_checked', 0)} totals exact; "
        f"RSS after loading the filters {d.get('rss_after_filters_mib', 0):,.0f} MiB",
    )


def _hostile_row(key: str, h: dict[str, Any], mix: str) -> Row:
    return Row(
        key, f"Hostile load ({mix}): dead letters while folding", h.get("dead_letters_per_s"), "letters/s",
        None, None, None,
        f"{h.get('records', 0):,} records ({h.get('megabytes', 0):.0f} MB), "
        f"{h.get('records_per_s', 0):,.0f} records/s, "
        f"{h.get('valid_per_s', 0):,.0f} valid/s folded, {h.get('totals_checked', 0)} totals "
        + ("exact" if h.get("totals_exact") else "NOT exact")
        + ("; the aggregator RESTARTED" if h.get("aggregator_restarted") else ""),
    )


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.2f}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a much smaller run (a couple of minutes)")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json", help="where to write the JSON")
    parser.add_argument("--profile", type=Path, default=None, help="record py-spy profiles into this folder")
    parser.add_argument("--keep", action="store_true", help="keep the data folder (.metering/bench/RUN)")
    parser.add_argument("--timeout", type=float, default=900.0, help="longest wait for one drain, in seconds")
    parser.add_argument("--latency-seconds", type=float, default=None, help="override: seconds of offered 10k/s load")
    parser.add_argument("--sustained-events", type=int, default=None, help="override: events of the sustained run")
    parser.add_argument("--big-customers", type=int, default=None, help="override: customers of memory and rating")
    parser.add_argument("--ingest-processes", type=int, default=None,
                        help="processes of the ingest service (default: METERING_INGEST_PROCESSES' default, the CPUs)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "services", "metering"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    phases = {p.strip() for p in args.phases.split(",") if p.strip()}
    unknown = phases - set(PHASES)
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    sizes = QUICK if args.quick else FULL
    overrides = {"latency_seconds": args.latency_seconds, "sustained_events": args.sustained_events,
                 "big_customers": args.big_customers}
    sizes = replace(sizes, **{k: v for k, v in overrides.items() if v is not None})
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:4]
    root = ROOT / ".metering" / "bench" / run_id
    bench = Bench(sizes, root, args.profile, args.timeout, args.ingest_processes)
    started = time.monotonic()
    try:
        bench.run(phases)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    table = rows(bench.results, sizes)
    document = {
        "command": "python -m bench " + " ".join(argv),
        "mode": "quick" if args.quick else "full",
        "finished_at": utc_text(datetime.now(UTC)),
        "wall_seconds": round(time.monotonic() - started, 1),
        "machine": machine(),
        "sizes": sizes.__dict__,
        "table": [row.as_json() for row in table],
        "details": bench.results,
    }
    write(args.out, document)
    print(render(table, document))
    return 1 if bench.results.get("errors") else 0
