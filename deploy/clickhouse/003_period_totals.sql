-- Per-series period totals as absolute values. `version` is the source offset of the
-- last measurement folded in, so the newest state wins and a replay writes the same
-- row again. Read with FINAL (or argMax by version).
CREATE TABLE IF NOT EXISTS period_totals
(
    customer_name  String,
    meter_name     LowCardinality(String),
    series         String,
    period_start   DateTime64(6, 'UTC'),
    period_end     DateTime64(6, 'UTC'),
    value          Decimal(38, 12),
    events         UInt64,
    version        UInt64,
    updated_at     DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (customer_name, meter_name, period_start, series)
