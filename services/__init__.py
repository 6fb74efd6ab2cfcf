"""The deployables (ingest, aggregator, rater) and the infrastructure they run on."""
