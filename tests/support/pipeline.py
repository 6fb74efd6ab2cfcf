"""Settings for one isolated pipeline under test: its own topics, groups, ports and store.

Several pipelines share one broker (and one ClickHouse server when configured), so
everything named is made unique; the short lateness, grace and idle times let a test
see a period close within seconds.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from services.infra.ports import free_port
from services.settings import (
    ClickHouseSettings,
    EventTimeSettings,
    HttpSettings,
    KafkaSettings,
    Settings,
)

# For the crash tests: a backlog of a few hundred records then goes through the flush
# order in many slices, and each slice after the first of a batch is decoded and judged
# while the one before it is stored (services/aggregator/batches.py), so the kills land
# on that path too. 16 KiB: about a hundred measurements.
SMALL_SLICE_BYTES = 16 * 1024


def pipeline_settings(
    bootstrap: str, clickhouse_url: str | None, data_dir: Path, *, tag: str = "t", unique: str | None = None,
    **changes: dict[str, Any],
) -> Settings:
    """`tag` starts every topic and group name, so a broker's topics tell which test made them.

    `changes` go per group, as to Settings.updated: `kafka={"session_timeout_seconds": 6.0}`.
    """
    unique = unique or uuid.uuid4().hex[:8]
    settings = Settings(
        data_dir=data_dir,
        kafka=KafkaSettings(
            bootstrap_servers=bootstrap, topic_prefix=f"{tag}{unique}.", consumer_group_prefix=f"{tag}{unique}",
            partitions=2,
        ),
        clickhouse=ClickHouseSettings(url=clickhouse_url, database=f"t_{unique}"),
        http=HttpSettings(
            port=free_port(), aggregator_port=free_port(), rater_port=free_port(), api_key=f"key-{unique}",
        ),
        event_time=EventTimeSettings(allowed_lateness_seconds=0.5, grace_seconds=1.0, idle_seconds=1.5),
    )
    return settings.updated(**changes) if changes else settings
