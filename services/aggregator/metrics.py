"""Prometheus metrics of the aggregator. Labels are bounded: never a customer or id."""

from prometheus_client import Counter, Gauge, Histogram

from shared.metrics_labels import KNOWN_FIELDS

EVENTS = Counter("metering_aggregator_events_total", "Measurement records by outcome", ["outcome"])
DEDUP_HITS = Counter("metering_aggregator_dedup_hits_total", "Measurements dropped as duplicates of an earlier id")
# Ids neither recent nor ruled out by the id filter, looked up in the store (dedup.py):
# true duplicates of old ids plus the filter's false positives. A rate that climbs
# towards the folded rate means the filters are too small for the ids in the window.
DEDUP_LOOKUPS = Counter("metering_aggregator_dedup_store_lookups_total", "Ids looked up in the store to deduplicate")
DEAD_LETTERS = Counter(
    "metering_aggregator_dead_letters_total", "Records dead-lettered, by failing field", ["reason_field"],
)
CONSUMER_LAG = Gauge(
    "metering_aggregator_consumer_lag", "Records not yet processed, per input partition", ["partition"],
)
WATERMARK_LAG = Gauge(
    "metering_aggregator_watermark_lag_seconds", "Wall clock minus the event-time watermark", ["partition"]
)
FLUSH = Histogram(
    "metering_aggregator_clickhouse_flush_seconds", "Time to write one batch's rows to ClickHouse",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ROWS = Counter("metering_aggregator_clickhouse_rows_total", "Rows written to ClickHouse", ["table"])
STORE_ERRORS = Counter(
    "metering_aggregator_clickhouse_errors_total", "Failed ClickHouse writes (per attempt)", ["table"],
)
INGEST_TO_STORED = Histogram(
    "metering_aggregator_ingest_to_stored_seconds", "From the record's produce time to its totals being stored",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
PERIODS = Counter("metering_aggregator_period_events_total", "PeriodTotals emitted", ["reason"])

# Every bounded label value exists from the first scrape (a 0, not a missing series).
for _outcome in ("folded", "duplicate", "dead_lettered", "forwarded"):
    EVENTS.labels(_outcome)
for _table in ("measurements", "period_totals", "watermarks", "invoices"):
    ROWS.labels(_table)
    STORE_ERRORS.labels(_table)
for _reason in ("closed", "late_usage"):
    PERIODS.labels(_reason)
for _field in sorted(KNOWN_FIELDS | {"other"}):
    DEAD_LETTERS.labels(_field)
