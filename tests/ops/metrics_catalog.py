"""The metric contract the dashboards and alerts are written against.

Exactly the names, types and label sets the services export (issue 6): counters end in
_total, durations in _seconds, labels are bounded (never a customer). The tests serve
these through prometheus_client to a real Prometheus, and check that every dashboard
and alert refers only to them.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST


@dataclass(frozen=True)
class Metric:
    kind: str  # counter | gauge | histogram
    labels: tuple[str, ...] = ()
    # the values an enumerated label may take (the others are free but bounded)
    values: dict[str, frozenset[str]] = field(default_factory=dict)


def _enum(**labels: str) -> dict[str, frozenset[str]]:
    return {name: frozenset(values.split("|")) for name, values in labels.items()}


CATALOG: dict[str, dict[str, Metric]] = {
    "ingest": {
        "metering_ingest_requests_total": Metric("counter", ("route", "status")),
        "metering_ingest_events_total": Metric(
            "counter", ("outcome",), _enum(outcome="accepted|rejected|unavailable|duplicate")
        ),
        "metering_ingest_rejections_total": Metric("counter", ("field",)),
        "metering_ingest_kafka_delivery_seconds": Metric("histogram"),
        "metering_ingest_producer_queue_depth": Metric("gauge"),
    },
    "aggregator": {
        "metering_aggregator_events_total": Metric(
            "counter", ("outcome",), _enum(outcome="folded|duplicate|dead_lettered|forwarded")
        ),
        "metering_aggregator_dedup_hits_total": Metric("counter"),
        "metering_aggregator_dedup_store_lookups_total": Metric("counter"),
        "metering_aggregator_dead_letters_total": Metric("counter", ("reason_field",)),
        "metering_aggregator_consumer_lag": Metric("gauge", ("partition",)),
        "metering_aggregator_watermark_lag_seconds": Metric("gauge", ("partition",)),
        "metering_aggregator_clickhouse_flush_seconds": Metric("histogram"),
        "metering_aggregator_clickhouse_rows_total": Metric("counter", ("table",)),
        "metering_aggregator_clickhouse_errors_total": Metric("counter", ("table",)),
        "metering_aggregator_ingest_to_stored_seconds": Metric("histogram"),
        "metering_aggregator_period_events_total": Metric(
            "counter", ("reason",), _enum(reason="closed|late_usage")
        ),
        "metering_aggregator_invoice_dead_letters_total": Metric("counter"),
    },
    "rater": {
        "metering_rater_periods_closed_total": Metric("counter"),
        "metering_rater_invoices_published_total": Metric("counter", ("kind",), _enum(kind="invoice|correction")),
        "metering_rater_periods_unchanged_total": Metric("counter"),
        "metering_rater_invoiced_amount_total": Metric(
            "counter", ("currency", "direction"), _enum(direction="charged|credited")
        ),
        "metering_rater_dead_letters_total": Metric(
            "counter", ("reason",), _enum(reason="unreadable|unknown_plan")
        ),
        "metering_rater_rating_duration_seconds": Metric("histogram"),
    },
}

# Every service follows the catalog topic through its own view (services/infra/catalog_view.py).
CATALOG_VIEW = {
    "metering_catalog_records_skipped_total": Metric("counter", ("part",), _enum(part="key|kind|value")),
}
for _component in CATALOG.values():
    _component.update(CATALOG_VIEW)

ALL_METRICS: dict[str, Metric] = {name: m for metrics in CATALOG.values() for name, m in metrics.items()}

# Series every process has from prometheus_client's default collectors.
DEFAULT_SERIES = {
    "process_resident_memory_bytes", "process_virtual_memory_bytes", "process_cpu_seconds_total",
    "process_open_fds", "process_max_fds", "process_start_time_seconds",
    "python_info", "python_gc_objects_collected_total", "python_gc_collections_total",
    "python_gc_objects_uncollectable_total",
}
TARGET_LABELS = {"job", "instance"}

_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
_IDENTIFIER = re.compile(r"(?<![\w\"'])([a-zA-Z_:][a-zA-Z0-9_:]*)")


def resolve(series_name: str) -> tuple[str, Metric] | None:
    """The catalog metric a series name belongs to (a histogram's _bucket/_sum/_count too)."""
    if series_name in ALL_METRICS:
        return series_name, ALL_METRICS[series_name]
    for suffix in _HISTOGRAM_SUFFIXES:
        base = series_name.removesuffix(suffix)
        if base != series_name and ALL_METRICS.get(base, Metric("")).kind == "histogram":
            return base, ALL_METRICS[base]
    return None


def metric_names(expr: str) -> set[str]:
    """The metering_/process_ metric names an expression refers to."""
    return {
        name for name in _IDENTIFIER.findall(expr)
        if name.startswith(("metering_", "process_", "python_"))
    }


# ---------------------------------------------------------------- a service's /metrics


class FakeService:
    """One process's registry with the catalog metrics, served over HTTP.

    `tick` runs before every scrape, so counters move between scrapes like real ones.
    """

    def __init__(self, component: str, tick: Callable[[FakeService, int], None]) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.metrics: dict[str, Any] = {}
        for name, metric in CATALOG[component].items():
            if metric.kind == "counter":
                self.metrics[name] = Counter(name, name, metric.labels, registry=self.registry)
            elif metric.kind == "gauge":
                self.metrics[name] = Gauge(name, name, metric.labels, registry=self.registry)
            else:
                self.metrics[name] = Histogram(name, name, metric.labels, registry=self.registry)
        self.tick = tick
        self.scrapes = 0
        self.started = time.time()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def render(self) -> bytes:
        with self._lock:
            self.tick(self, self.scrapes)
            self.scrapes += 1
            return generate_latest(self.registry)

    def start(self) -> int:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/metrics":
                    self.send_response(404)
                    self.end_headers()
                    return
                body = service.render()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return int(self._server.server_address[1])

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

