"""Shared fixtures: the real Kafka broker and the real ClickHouse engine.

Where a Docker engine exists, METERING_TEST_DOCKER=1 runs the official Apache Kafka
and ClickHouse server images through testcontainers instead. On these machines (no
Docker) the session starts the local Apache Kafka broker from Maven Central jars and
uses the embedded ClickHouse engine (chdb). KAFKA_BOOTSTRAP_SERVERS / CLICKHOUSE_URL
point the suite at existing servers instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.infra import native
from services.infra.kafka_broker import LocalKafkaBroker
from services.settings import Settings
from tests.support.pipeline import pipeline_settings as pipeline_settings_for

USE_DOCKER = os.environ.get("METERING_TEST_DOCKER") == "1"


def pytest_report_header() -> str:
    return native.describe()


def pytest_sessionstart(session: pytest.Session) -> None:
    # A compiled module built from an older source would be tested instead of the source.
    stale = native.stale()
    if stale:
        pytest.exit(f"compiled from older source: {', '.join(stale)}; run `make native` "
                    "(or scripts/build_native.py --clean to test the sources as Python)", returncode=4)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    if USE_DOCKER:
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:3.9.1").with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    broker = LocalKafkaBroker(tmp_path_factory.mktemp("kafka")).start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def clickhouse_url() -> Iterator[str | None]:
    """None means the embedded engine (chdb); a URL means a ClickHouse server."""
    configured = os.environ.get("CLICKHOUSE_URL")
    if configured:
        yield configured
        return
    if USE_DOCKER:
        from testcontainers.clickhouse import ClickHouseContainer

        with ClickHouseContainer("clickhouse/clickhouse-server:25.8") as container:
            yield container.get_connection_url().replace("clickhouse://", "http://")
        return
    yield None


@pytest.fixture(scope="session")
def chdb_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # chdb opens one data path per process: every in-process store test shares this
    # path and isolates itself with a database of its own.
    return tmp_path_factory.mktemp("chdb-root")


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def pipeline_settings(kafka_bootstrap: str, clickhouse_url: str | None, tmp_path: Path, unique: str) -> Settings:
    """Settings for one isolated pipeline: own topics, groups, ports, store."""
    return pipeline_settings_for(kafka_bootstrap, clickhouse_url, tmp_path / "data", unique=unique)
