"""During a real end-to-end run, a real Prometheus scrapes every service; every PromQL
expression of the pipeline-health dashboard returns data, every alert expression
evaluates, and no alert fires on a healthy pipeline."""

from __future__ import annotations

import contextlib
import json
import subprocess
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from confluent_kafka import Producer

from services.infra import topics
from services.infra.catalog_view import publish_catalog
from services.infra.ports import free_port
from services.infra.stack import Stack
from services.settings import Settings
from shared.catalog import parse_catalog
from shared.periods import anchor_for_period_ending
from tests.e2e.streaming import auth
from tests.ops.support import tool
from tests.ops.test_prometheus import ALERT_EXPRESSIONS, ALERTS_FILE, DASHBOARD_EXPRESSIONS, LivePrometheus, _wait
from tests.support.catalogs import worked_example_catalog
from tests.support.kafka import read_invoices

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse]


@pytest.fixture
def running(pipeline_settings: Settings) -> Iterator[Stack]:
    with Stack(pipeline_settings, log_dir=pipeline_settings.data_dir / "logs") as stack:
        yield stack


@pytest.fixture
def prometheus(running: Stack, tmp_path: Path) -> Iterator[LivePrometheus]:
    settings = running.settings
    jobs = {
        "metering-ingest": settings.http.port,
        "metering-aggregator": settings.http.aggregator_port,
        "metering-rater": settings.http.rater_port,
    }
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS_FILE)],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]} for job, port in jobs.items()
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [tool("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    live = LivePrometheus(f"http://127.0.0.1:{port}", "healthy")
    try:
        _wait(lambda: urllib.request.urlopen(f"{live.url}/-/ready", timeout=1).status == 200, 30, "Prometheus")
        yield live
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def _drive(stack: Stack) -> None:
    """Traffic that touches every metric: accepted, rejected, duplicate, closed, invoiced."""
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=8)
    anchor, index = anchor_for_period_ending(end)
    catalog, problems = parse_catalog(worked_example_catalog(anchor))
    assert problems == []
    publish_catalog(stack.settings, stack.bootstrap, catalog)
    batch = [{"id": f"o-{i}", "meter_name": "api_calls", "customer_name": "acme", "value": 1000,
              "time": (end - timedelta(hours=i + 1)).isoformat()} for i in range(50)]
    url = f"{stack.ingest_url}/measurements/batch"
    assert httpx.post(url, json=batch, headers=auth(stack), timeout=30).status_code == 202
    assert httpx.post(url, json=batch, headers=auth(stack), timeout=30).status_code == 202  # duplicates
    bad = [{"id": "x", "meter_name": "nope", "customer_name": "acme", "value": 1}]
    assert httpx.post(url, json=bad, headers=auth(stack), timeout=30).status_code == 400
    producer = Producer({"bootstrap.servers": stack.bootstrap})  # a Kafka-native record keyed wrongly
    measurements = topics.name(stack.settings, topics.MEASUREMENTS)
    producer.produce(measurements, key=b"not-acme", value=json.dumps(batch[0]).encode())
    assert producer.flush(10) == 0
    invoices = read_invoices(
        stack.bootstrap, topics.name(stack.settings, topics.INVOICES), expected=index + 1, timeout=90,
    )
    assert len(invoices) == index + 1


def test_prometheus_scrapes_every_service_and_every_query_has_data(running: Stack, prometheus: LivePrometheus) -> None:
    _drive(running)

    def every_dashboard_query_has_data() -> bool:
        return all(prometheus.query(expr) for _, expr in DASHBOARD_EXPRESSIONS)

    _wait(lambda: len(prometheus.query('up{job=~"metering-.*"} == 1')) == 3, 60, "all three services scraped")
    with contextlib.suppress(AssertionError):  # the assertion below names the queries still empty
        _wait(every_dashboard_query_has_data, 90, "data behind every dashboard query")
    empty = [f"{name}: {expr}" for name, expr in DASHBOARD_EXPRESSIONS if not prometheus.query(expr)]
    assert empty == [], "dashboard queries without data:\n" + "\n".join(empty)
    for _, expr in ALERT_EXPRESSIONS:
        prometheus.query(expr)  # parses and evaluates against the live series
    rules = prometheus.alerting_rules()
    assert {rule["health"] for rule in rules} == {"ok"}
    firing = [rule["name"] for rule in rules if rule["state"] == "firing"]
    assert firing == [], f"alerts firing on a healthy pipeline: {firing}"
