"""`metering topics`, which the compose init container and the Kubernetes init Job run."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient

from services.cli import main
from services.infra import topics

pytestmark = [pytest.mark.ops, pytest.mark.kafka]


def test_topics_command_creates_every_topic_once(
    kafka_bootstrap: str, unique: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"t{unique}."
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("METERING_TOPIC_PREFIX", prefix)
    monkeypatch.setenv("METERING_PARTITIONS", "3")
    assert main(["topics"]) == 0
    assert main(["topics"]) == 0  # a second run (a restarted init container) changes nothing
    names = [f"{prefix}{spec.suffix}" for spec in topics.ALL]
    assert capsys.readouterr().out.splitlines() == ["topics ready: " + ", ".join(names)] * 2
    metadata = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=30).topics
    for spec in topics.ALL:
        expected = 1 if spec is topics.CATALOG else 3
        assert len(metadata[f"{prefix}{spec.suffix}"].partitions) == expected, spec.suffix


def test_topics_command_needs_a_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    with pytest.raises(SystemExit, match="KAFKA_BOOTSTRAP_SERVERS"):
        main(["topics"])
