"""Adapters to the outside world shared by the services: Kafka, ClickHouse, processes."""
