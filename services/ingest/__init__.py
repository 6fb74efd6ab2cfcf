"""The ingest service: validates measurements and writes them to Kafka; owns the HTTP API."""
