-- Every published invoice and correction, exactly as it went out on the invoices topic.
CREATE TABLE IF NOT EXISTS invoices
(
    invoice_id      String,
    revision        UInt32,
    kind            LowCardinality(String),
    customer_name   String,
    price_plan_name String,
    period_start    DateTime64(6, 'UTC'),
    period_end      DateTime64(6, 'UTC'),
    currency        LowCardinality(String),
    total           Decimal(38, 2),
    issued_at       DateTime64(6, 'UTC'),
    body            String
)
ENGINE = ReplacingMergeTree
ORDER BY invoice_id
