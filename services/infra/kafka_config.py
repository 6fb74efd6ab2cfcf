"""librdkafka configurations: every Kafka client of the services and the bench is built here.

The guarantees are decided once, in this module, and a caller cannot loosen them:
- Producers are idempotent with acks=all, so a record the broker confirmed is on every
  in-sync replica exactly once, and keys partition as in Kafka's Java clients and Faust
  (murmur2), so a customer's records land in the same partition whoever writes them.
- Consumers never commit offsets by themselves: the code commits after the work is done
  (or never, for a reader that assigns its own offsets). They read committed records
  only, so an invoice from an aborted rater transaction is never seen. A group without
  a committed offset starts at the beginning: nothing is skipped.

`extra` carries what only tunes a client (batching, compression, timeouts, callbacks).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

KafkaConfig = dict[str, Any]  # librdkafka properties, and callbacks such as error_cb

# What the functions below decide; `extra` may not set these.
GUARANTEES = frozenset({
    "bootstrap.servers", "enable.idempotence", "acks", "partitioner", "transactional.id",
    "group.id", "enable.auto.commit", "isolation.level", "auto.offset.reset",
})


def producer_config(bootstrap: str, *, linger_ms: int = 5, extra: Mapping[str, Any] | None = None) -> KafkaConfig:
    return {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "partitioner": "murmur2_random",
        "linger.ms": linger_ms,
        **_tuning(extra),
    }


def transactional_producer_config(
    bootstrap: str, transactional_id: str, *, extra: Mapping[str, Any] | None = None
) -> KafkaConfig:
    """A producer whose writes (and consumer offsets) commit or abort together.

    The id is stable per logical producer: a new instance with it fences the old one.
    """
    return producer_config(bootstrap, extra=extra) | {"transactional.id": transactional_id}


def consumer_config(bootstrap: str, group: str, *, extra: Mapping[str, Any] | None = None) -> KafkaConfig:
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
        **_tuning(extra),
    }


def admin_config(bootstrap: str) -> KafkaConfig:
    return {"bootstrap.servers": bootstrap}


def _tuning(extra: Mapping[str, Any] | None) -> dict[str, Any]:
    overridden = sorted(GUARANTEES.intersection(extra or {}))
    if overridden:
        raise ValueError(f"{', '.join(overridden)}: decided by services/infra/kafka_config.py, not by a caller")
    return dict(extra or {})
