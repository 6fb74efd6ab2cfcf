-- Event-time watermark per input partition (greatest event time seen less lateness,
-- or the idle wall-clock advance), newest version wins.
CREATE TABLE IF NOT EXISTS watermarks
(
    topic          LowCardinality(String),
    partition      UInt32,
    max_event_time DateTime64(6, 'UTC'),
    watermark      DateTime64(6, 'UTC'),
    version        UInt64,
    updated_at     DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (topic, partition)
