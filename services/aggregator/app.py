"""The Faust app: declarations only (app and topics). Behaviour is in worker.py."""

from __future__ import annotations

from dataclasses import dataclass

import faust
from faust.types import TopicT

from services.infra import topics
from services.infra.partitioning import table_partitioner
from services.settings import Settings


@dataclass
class Declarations:
    app: faust.App
    measurements: TopicT
    period_totals: TopicT
    dead_letters: TopicT
    limit_events: TopicT
    # The state log (state_log.py): one partition per input partition, written by us
    # and read back by state_reader.py when a partition is assigned.
    state: TopicT


def declare(settings: Settings, bootstrap: str) -> Declarations:
    app = faust.App(
        f"{settings.kafka.consumer_group_prefix}-aggregator",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        # Faust's own folder, beside our data (its default is the working directory).
        datadir=str(settings.data_dir / "faust"),
        topic_partitions=settings.kafka.partitions,
        topic_replication_factor=settings.kafka.replication_factor,
        producer_partitioner=table_partitioner,
        producer_acks=-1,
        producer_max_request_size=4 * 1024 * 1024,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        broker_session_timeout=settings.kafka.session_timeout_seconds,
        broker_heartbeat_interval=max(settings.kafka.session_timeout_seconds / 10, 0.5),
        # Standby copies would double the memory; recovery from the changelog is enough.
        table_standby_replicas=0,
        web_enabled=True,
        # Faust's own pages (/router/, /table/, /graph/, stats) answer without a key and
        # show internals: only our pages (pages.py) are served.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_host=settings.http.host,
        web_port=settings.http.aggregator_port,
        web_bind="127.0.0.1" if settings.http.host == "127.0.0.1" else "0.0.0.0",
        table_cleanup_interval=3600.0,
        key_serializer="raw",
        value_serializer="raw",
    )
    def raw_topic(spec: topics.TopicSpec) -> TopicT:
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

    state = raw_topic(topics.AGGREGATOR_STATE)
    # Never written: faust-streaming 0.15 never finishes its first assignment when an
    # app declares no table at all (observed: partitions assigned in the group, agents and
    # timers never started). The state lives in the state log (state_log.py).
    app.Table("unused", default=None, key_type=bytes, value_type=bytes, partitions=settings.kafka.partitions)

    return Declarations(
        app=app, measurements=measurements, period_totals=period_totals, dead_letters=dead_letters,
        limit_events=limit_events,
        state=state,
    )
