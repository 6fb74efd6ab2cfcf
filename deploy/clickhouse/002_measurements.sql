-- The audit trail: every accepted measurement once per (customer, meter, id), with the
-- Kafka position it was read from. A replay re-inserts identical rows, which the
-- ReplacingMergeTree collapses, so replays are harmless.
CREATE TABLE IF NOT EXISTS measurements
(
    customer_name  String,
    meter_name     LowCardinality(String),
    id             String,
    series         String,
    value          Decimal(38, 12),
    string_value   String,
    event_time     DateTime64(6, 'UTC'),
    labels         Map(String, String),
    reset_total    Bool,
    topic          LowCardinality(String),
    partition      UInt32,
    offset         UInt64,
    inserted_at    DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (customer_name, meter_name, id)
