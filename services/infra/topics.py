"""The topic registry: every topic the pipeline uses, its key, value and configuration."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from services.infra.kafka_config import admin_config
from services.settings import Settings


@dataclass(frozen=True)
class TopicSpec:
    suffix: str
    key: str
    value: str
    compacted: bool = False
    config: dict[str, str] = field(default_factory=dict)


MEASUREMENTS = TopicSpec("measurements", "customer name", "Measurement JSON (shared.models.Measurement)")
CATALOG = TopicSpec(
    "catalog", "'<kind>/<name>'", "entity JSON, or a tombstone (null) for a delete", compacted=True
)
PERIOD_TOTALS = TopicSpec(
    "period-totals", "customer name", "PeriodTotals JSON (shared.models.invoice.PeriodTotals)"
)
INVOICES = TopicSpec("invoices", "customer name", "Invoice JSON (shared.models.invoice.Invoice)")
LIMIT_EVENTS = TopicSpec(
    "limit-events", "customer name",
    "LimitExceededEvent JSON (shared.models.events), once per customer, feature, period",
)
DEAD_LETTERS = TopicSpec(
    "dead-letters", "original key", "original bytes; headers carry reason and origin"
)

AGGREGATOR_STATE = TopicSpec(
    "aggregator-state", "'<partition>/<sequence>'",
    "the aggregator's state log: JSON lists of changes (services/aggregator/state_log.py)",
    compacted=True,
)

ALL = (MEASUREMENTS, CATALOG, PERIOD_TOTALS, INVOICES, LIMIT_EVENTS, DEAD_LETTERS, AGGREGATOR_STATE)


def name(settings: Settings, spec: TopicSpec) -> str:
    return f"{settings.kafka.topic_prefix}{spec.suffix}"


def ensure_topics(settings: Settings, bootstrap: str, timeout: float = 30.0) -> None:
    """Create every registered topic that does not exist yet (idempotent)."""
    admin = AdminClient(admin_config(bootstrap))
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = []
    for spec in ALL:
        topic = name(settings, spec)
        if topic in existing:
            continue
        config = dict(spec.config)
        if spec.compacted:
            config["cleanup.policy"] = "compact"
        partitions = 1 if spec is CATALOG else settings.kafka.partitions
        wanted.append(NewTopic(
            topic, num_partitions=partitions, replication_factor=settings.kafka.replication_factor, config=config,
        ))
    if wanted:
        for future in admin.create_topics(wanted, operation_timeout=timeout).values():
            try:
                future.result()
            except KafkaException as error:
                if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
    _await_leaders(admin, [name(settings, spec) for spec in ALL], timeout)


def _await_leaders(admin: AdminClient, names: list[str], timeout: float) -> None:
    """New topics answer 'not leader' for a moment; wait until every partition has one."""
    deadline = time.monotonic() + timeout
    while True:
        metadata = admin.list_topics(timeout=timeout).topics
        if all(
            t in metadata and metadata[t].error is None and metadata[t].partitions
            and all(p.leader >= 0 for p in metadata[t].partitions.values())
            for t in names
        ):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics without a leader after {timeout}s: {names}")
        time.sleep(0.1)
