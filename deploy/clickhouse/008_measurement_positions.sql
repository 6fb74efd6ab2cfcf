-- The position of a measurement's first carrier: offset * 2^20 + its index in the
-- envelope (services/aggregator/processing.position). Deduplication looks older ids up
-- here (services/aggregator/dedup.py); rows written before this migration have no
-- index, and read as the first item of their record.
ALTER TABLE measurements ADD COLUMN IF NOT EXISTS position UInt64 DEFAULT offset * 1048576
