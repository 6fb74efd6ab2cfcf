"""Prometheus metrics of the ingest service. Labels are bounded: never a customer or id."""

from prometheus_client import Counter, Gauge, Histogram

from shared.metrics_labels import KNOWN_FIELDS, field_label

REQUESTS = Counter("metering_ingest_requests_total", "HTTP requests by route and status", ["route", "status"])
EVENTS = Counter("metering_ingest_events_total", "Measurements by outcome", ["outcome"])
REJECTIONS = Counter("metering_ingest_rejections_total", "Measurement errors by field (top-level name)", ["field"])
DELIVERY = Histogram(
    "metering_ingest_kafka_delivery_seconds", "Time from produce to the last broker ack of a batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
# In a process group (process_group.py) each process sets its own depth; /metrics sums
# the live ones, so a process that died no longer adds its last depth.
QUEUE = Gauge("metering_ingest_producer_queue_depth", "Records waiting in the producer queue",
              multiprocess_mode="livesum")
CATALOG_REQUESTS = Counter("metering_catalog_requests_total", "Catalog API requests", ["kind", "method", "status"])

__all__ = ["CATALOG_REQUESTS", "DELIVERY", "EVENTS", "QUEUE", "REJECTIONS", "REQUESTS", "field_label"]

# Every bounded label value exists from the first scrape, so rates and alerts see a 0
# rather than no series at all.
for _outcome in ("accepted", "rejected", "unavailable"):
    EVENTS.labels(_outcome)
for _route in ("batch", "one"):
    for _status in ("202", "400", "413", "503"):
        REQUESTS.labels(_route, _status)
for _field in sorted(KNOWN_FIELDS | {"other"}):
    REJECTIONS.labels(_field)
