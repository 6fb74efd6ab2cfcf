"""Prometheus metrics of the ingest service. Labels are bounded: never a customer or id."""

from prometheus_client import Counter, Gauge, Histogram

from shared.metrics_labels import field_label

REQUESTS = Counter("metering_ingest_requests_total", "HTTP requests by route and status", ["route", "status"])
EVENTS = Counter("metering_ingest_events_total", "Measurements by outcome", ["outcome"])
REJECTIONS = Counter("metering_ingest_rejections_total", "Measurement errors by field (top-level name)", ["field"])
DELIVERY = Histogram(
    "metering_ingest_kafka_delivery_seconds", "Time from produce to the last broker ack of a batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
QUEUE = Gauge("metering_ingest_producer_queue_depth", "Records waiting in the producer queue")

__all__ = ["DELIVERY", "EVENTS", "QUEUE", "REJECTIONS", "REQUESTS", "field_label"]
