"""deploy/compose.yaml: Docker Compose itself validates it, then its wiring is checked.

`docker compose config` (Compose v2) validates the file against the Compose
specification and resolves it; the resolved model is then checked against what the
services, Prometheus and Grafana need from each other.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.ops.support import DEPLOY, ROOT, compose_command

pytestmark = pytest.mark.ops

COMPOSE_FILE = DEPLOY / "compose.yaml"
METERING_SERVICES = {"init", "ingest", "aggregator-1", "aggregator-2", "rater"}
PORTS = {"ingest": "METERING_HTTP_PORT", "aggregator-1": "METERING_AGGREGATOR_PORT",
         "aggregator-2": "METERING_AGGREGATOR_PORT", "rater": "METERING_RATER_PORT"}


def compose(*args: str) -> subprocess.CompletedProcess[str]:
    # The file's own defaults, not whatever this shell happens to export.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("METERING_", "CLICKHOUSE_", "GRAFANA_", "COMPOSE_", "KAFKA_"))}
    return subprocess.run([*compose_command(), "-f", str(COMPOSE_FILE), *args],
                          capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def model() -> dict[str, Any]:
    result = compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_docker_compose_config_accepts_the_file() -> None:
    result = compose("config", "-q")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


def test_the_whole_pipeline_is_there(model: dict[str, Any]) -> None:
    assert set(model["services"]) == METERING_SERVICES | {"kafka", "clickhouse", "prometheus", "grafana"}
    services = model["services"]
    assert re.fullmatch(r"apache/kafka:3\.9\.\d+", services["kafka"]["image"])
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    for name in ("aggregator-1", "aggregator-2"):
        assert services[name]["command"] == ["aggregator"]
    assert services["ingest"]["command"] == ["ingest"]
    assert services["rater"]["command"] == ["rater"]


def test_metering_services_build_one_image_from_the_repository(model: dict[str, Any]) -> None:
    images = {model["services"][name]["image"] for name in METERING_SERVICES}
    assert len(images) == 1
    for name in METERING_SERVICES:
        build = model["services"][name]["build"]
        assert Path(build["context"]) == ROOT and build["dockerfile"] == "Dockerfile"
    assert (ROOT / "Dockerfile").is_file()


def test_init_creates_topics_and_migrates_before_the_services_start(model: dict[str, Any]) -> None:
    services = model["services"]
    init = services["init"]
    assert init["entrypoint"] == ["/bin/sh", "-c"]
    assert init["command"] == ["metering topics && metering migrate"]
    assert init["restart"] == "no"
    assert {k: v["condition"] for k, v in init["depends_on"].items()} == {
        "kafka": "service_healthy", "clickhouse": "service_healthy"}
    for name in METERING_SERVICES - {"init"}:
        assert services[name]["depends_on"]["init"]["condition"] == "service_completed_successfully", name
    for name in ("kafka", "clickhouse"):
        assert services[name]["healthcheck"]["test"], name


def test_services_share_one_configuration(model: dict[str, Any]) -> None:
    services = model["services"]
    for name in METERING_SERVICES:
        env = services[name]["environment"]
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092", name
        url = urlsplit(env["CLICKHOUSE_URL"])
        assert (url.scheme, url.hostname, url.port, url.username) == ("http", "clickhouse", 8123, "metering"), name
        assert url.password == services["clickhouse"]["environment"]["CLICKHOUSE_PASSWORD"]
        assert env["METERING_CLICKHOUSE_DATABASE"] == services["clickhouse"]["environment"]["CLICKHOUSE_DB"]
        assert env["METERING_HTTP_HOST"] == "0.0.0.0", name
        assert int(env["METERING_PARTITIONS"]) >= 2, "two aggregator workers need two partitions"
    assert services["ingest"]["environment"]["METERING_API_KEY"]


def test_kafka_is_a_single_kraft_node_with_a_valid_cluster_id(model: dict[str, Any]) -> None:
    env = model["services"]["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    cluster_id = env["CLUSTER_ID"]
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16, "a Kafka cluster id is a base64 UUID"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    # the rater's transactions need the transaction log, which needs as many replicas as brokers
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"


def test_prometheus_scrapes_every_service_on_its_port(model: dict[str, Any]) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    scraped = {
        target for job in config["scrape_configs"] if job["job_name"].startswith("metering-")
        for static in job["static_configs"] for target in static["targets"]
    }
    expected = {f"{name}:{model['services'][name]['environment'][variable]}" for name, variable in PORTS.items()}
    assert scraped == expected


def _bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    return {v["target"]: v["source"] for v in service.get("volumes", []) if v["type"] == "bind"}


def test_mounted_files_exist(model: dict[str, Any]) -> None:
    for name, service in model["services"].items():
        for target, source in _bind_mounts(service).items():
            assert Path(source).exists(), f"{name}: {source} (mounted at {target}) does not exist"


def test_grafana_is_provisioned_with_our_dashboards(model: dict[str, Any]) -> None:
    grafana = model["services"]["grafana"]
    mounts = _bind_mounts(grafana)
    assert Path(mounts["/etc/grafana/provisioning"]) == DEPLOY / "grafana" / "provisioning"
    provider = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "metering.yaml").read_text())
    dashboards_path = provider["providers"][0]["options"]["path"]
    assert Path(mounts[dashboards_path]) == DEPLOY / "grafana" / "dashboards"
    assert "grafana-clickhouse-datasource" in grafana["environment"]["GF_INSTALL_PLUGINS"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (DEPLOY / "grafana" / "dashboards" / Path(home).relative_to(dashboards_path)).is_file()
    # every ${VARIABLE} in the datasources file is set in Grafana's environment
    datasources = (DEPLOY / "grafana" / "provisioning" / "datasources" / "metering.yaml").read_text()
    for variable in re.findall(r"\$\{(\w+)\}", datasources):
        assert grafana["environment"].get(variable), f"Grafana's environment lacks {variable}"
    prometheus_url = urlsplit(grafana["environment"]["METERING_PROMETHEUS_URL"])
    assert prometheus_url.hostname in model["services"]
    assert grafana["environment"]["METERING_CLICKHOUSE_HOST"] in model["services"]


def test_grafana_reads_clickhouse_as_a_read_only_user(model: dict[str, Any]) -> None:
    import xml.etree.ElementTree as ElementTree

    clickhouse = model["services"]["clickhouse"]
    users_file = next(
        Path(s) for t, s in _bind_mounts(clickhouse).items() if t.startswith("/etc/clickhouse-server/users.d/")
    )
    root = ElementTree.parse(users_file).getroot()
    grafana_env = model["services"]["grafana"]["environment"]
    user = root.find(f"users/{grafana_env['METERING_CLICKHOUSE_READER_USER']}")
    assert user is not None
    password_variable = user.find("password").get("from_env")  # type: ignore[union-attr]
    assert clickhouse["environment"][password_variable] == grafana_env["METERING_CLICKHOUSE_READER_PASSWORD"]
    profile = root.find(f"profiles/{user.findtext('profile')}")
    assert profile is not None and profile.findtext("readonly") in {"1", "2"}
    database = clickhouse["environment"]["CLICKHOUSE_DB"]
    assert [g.text for g in user.findall("grants/query")] == [f"GRANT SELECT ON {database}.*"]
