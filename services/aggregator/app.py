"""The Faust app: declarations only (app, topics, tables). Behaviour is in worker.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, MutableMapping

import faust

from services.infra import topics
from services.infra.partitioning import table_partitioner
from services.settings import Settings


@dataclass
class Declarations:
    app: faust.App
    measurements: Any
    period_totals: Any
    dead_letters: Any
    limit_events: Any
    series: Any  # series table key -> folding state
    seen: Any  # dedup key -> [first offset, event time]
    marks: Any  # customer -> closing marks
    clock: Any  # partition key -> {"max_event_time": iso}


class StrKeyed(MutableMapping[str, Any]):
    """A Faust table seen through str keys (stored as UTF-8 bytes)."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def __getitem__(self, key: str) -> Any:
        value = self.table.get(key.encode())
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self.table.get(key.encode())
        return default if value is None else value

    def __setitem__(self, key: str, value: Any) -> None:
        self.table[key.encode()] = value

    def __delitem__(self, key: str) -> None:
        del self.table[key.encode()]

    def __iter__(self) -> Iterator[str]:
        return (k.decode() if isinstance(k, bytes) else str(k) for k in list(self.table.keys()))

    def __len__(self) -> int:
        return len(self.table)


def declare(settings: Settings, bootstrap: str) -> Declarations:
    app = faust.App(
        f"{settings.consumer_group_prefix}-aggregator",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        # Faust's own folder, beside our data (its default is the working directory).
        datadir=str(settings.data_dir / "faust"),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        producer_partitioner=table_partitioner,
        producer_acks=-1,
        producer_max_request_size=4 * 1024 * 1024,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=max(settings.session_timeout_seconds / 10, 0.5),
        # Standby copies would double the memory; recovery from the changelog is enough.
        table_standby_replicas=0,
        web_enabled=True,
        web_host=settings.http_host,
        web_port=settings.aggregator_port,
        web_bind="127.0.0.1" if settings.http_host == "127.0.0.1" else "0.0.0.0",
        table_cleanup_interval=3600.0,
        key_serializer="raw",
        value_serializer="raw",
    )
    def raw_topic(spec: topics.TopicSpec) -> Any:
        # Raw bytes in and out: decoding is ours, so undecodable input is dead-lettered
        # with a reason instead of being skipped inside Faust.
        return app.topic(
            topics.name(settings, spec), key_type=bytes, value_type=bytes,
            key_serializer="raw", value_serializer="raw",
        )

    measurements = raw_topic(topics.MEASUREMENTS)
    period_totals = raw_topic(topics.PERIOD_TOTALS)
    dead_letters = raw_topic(topics.DEAD_LETTERS)
    limit_events = raw_topic(topics.LIMIT_EVENTS)

    def table(name: str) -> Any:
        # use_partitioner: the table key (customer first) picks the changelog partition
        # through table_partitioner, so state is co-partitioned with the customer's
        # measurements however (and from wherever) it is written.
        # Keys are raw bytes (key_type=bytes) so the partitioner sees the customer name
        # itself, not its JSON encoding; values are JSON.
        table = app.Table(name, default=None, key_type=bytes, use_partitioner=True, partitions=settings.partitions)
        return StrKeyed(table)

    return Declarations(
        app=app, measurements=measurements, period_totals=period_totals, dead_letters=dead_letters, limit_events=limit_events,
        series=table("series"), seen=table("seen"), marks=table("marks"), clock=table("clock"),
    )
