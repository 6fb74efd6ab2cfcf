"""Prometheus configuration, alert rules and every PromQL expression of the dashboards.

- promtool checks both scrape configurations and the rules, and runs the rules' unit
  tests (deploy/prometheus/alerts_test.yml: when each alert fires, `for` included).
- Every expression refers only to the metric contract (tests/ops/metrics_catalog.py).
- A real Prometheus scrapes small HTTP servers that export the contract's metrics through
  prometheus_client, in two scenarios: a healthy pipeline (every dashboard expression
  returns data, no alert expression does, every rule is inactive) and a broken one
  (every alert expression returns data and every alerting rule is pending or firing).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.infra.ports import free_port
from tests.ops.metrics_catalog import (
    ALL_METRICS,
    DEFAULT_SERIES,
    TARGET_LABELS,
    FakeService,
    metric_names,
    resolve,
)
from tests.ops.support import DEPLOY, ROOT, tool

pytestmark = pytest.mark.ops

PROMETHEUS_DIR = DEPLOY / "prometheus"
ALERTS_FILE = PROMETHEUS_DIR / "alerts.yml"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
JOBS = ("metering-ingest", "metering-aggregator", "metering-rater")

# Grafana's own variables in Prometheus queries, as Grafana would fill them in here.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS_FILE.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def prometheus_targets() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                if target.get("datasource", {}).get("type") == "prometheus":
                    found.append((f"{dashboard['title']} / {panel['title']} / {target['refId']}", target))
    return found


def substitute(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable left in {expr!r}"
    return expr


ALERT_EXPRESSIONS = [(rule["alert"], rule["expr"]) for rule in alert_rules()]
DASHBOARD_EXPRESSIONS = [(name, substitute(target["expr"])) for name, target in prometheus_targets()]


def run(command: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


# ------------------------------------------------------------------------ promtool


def test_promtool_accepts_the_rules() -> None:
    result = run([tool("promtool"), "check", "rules", str(ALERTS_FILE)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


@pytest.mark.parametrize("config", ["prometheus.yml", "prometheus-k8s.yml"])
def test_promtool_accepts_the_scrape_configuration(config: str) -> None:
    result = run([tool("promtool"), "check", "config", config], cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alert_unit_tests_pass() -> None:
    result = run([tool("promtool"), "test", "rules", "alerts_test.yml"], cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_unit_tests_and_a_runbook() -> None:
    unit_tests = (PROMETHEUS_DIR / "alerts_test.yml").read_text()
    runbook = (ROOT / "docs" / "operations.md").read_text()
    for name, _ in ALERT_EXPRESSIONS:
        assert name in unit_tests, f"{name} has no case in alerts_test.yml"
        assert re.search(rf"^#+ .*\b{name}\b", runbook, re.MULTILINE), f"{name} has no section in docs/operations.md"
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert {"summary", "description", "runbook"} <= set(rule["annotations"])
        anchor = rule["annotations"]["runbook"].split("#", 1)[1]
        assert anchor == rule["alert"].lower()


def test_scrape_jobs_are_the_ones_alerts_and_dashboards_expect() -> None:
    for config in ("prometheus.yml", "prometheus-k8s.yml"):
        jobs = {job["job_name"] for job in yaml.safe_load((PROMETHEUS_DIR / config).read_text())["scrape_configs"]}
        assert set(JOBS) <= jobs, config


# --------------------------------------------------------- the metric contract

_MATCHERS = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
_MATCHER = re.compile(r'\s*([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"([^"]*)"\s*')
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


@pytest.mark.parametrize("name,expr", ALERT_EXPRESSIONS + DASHBOARD_EXPRESSIONS, ids=lambda v: str(v)[:60])
def test_expressions_use_only_the_metric_contract(name: str, expr: str) -> None:
    referenced: dict[str, tuple[str, ...]] = {}
    for series in metric_names(expr):
        if series in DEFAULT_SERIES:
            referenced[series] = ()
            continue
        found = resolve(series)
        assert found is not None, f"{name}: {series} is not a metric the services export"
        referenced[series] = found[1].labels + (("le",) if series.endswith("_bucket") else ())
    for series, body in _MATCHERS.findall(expr):
        if series not in referenced:
            continue
        contract = resolve(series)
        for label, op, value in _MATCHER.findall(body):
            assert label in set(referenced[series]) | TARGET_LABELS, f"{name}: {series} has no label {label}"
            allowed = contract[1].values.get(label) if contract else None
            if allowed and op == "=":
                assert value in allowed, f"{name}: {series}{{{label}}} is never {value!r} ({sorted(allowed)})"
            if allowed and op == "=~":
                assert any(re.fullmatch(value, v) for v in allowed), f"{name}: {label}=~{value!r} matches nothing"
    known = set(TARGET_LABELS).union(*referenced.values()) if referenced else set(TARGET_LABELS)
    for group in _GROUPING.findall(expr):
        for label in filter(None, (part.strip() for part in group.split(","))):
            assert label in known, f"{name}: groups by {label!r}, which none of its metrics has"


def test_every_metric_of_the_contract_is_on_a_dashboard() -> None:
    shown = {found[0] for _, e in DASHBOARD_EXPRESSIONS for n in metric_names(e) if (found := resolve(n))}
    assert set(ALL_METRICS) - shown == set()


# ------------------------------------------------------- a real Prometheus


def catalog_view(svc: FakeService, skipped_keys: int = 0) -> None:
    """Every service has a catalog view; the real one exports all three parts from its start."""
    for part in ("key", "kind", "value"):
        skipped = svc.metrics["metering_catalog_records_skipped_total"]
        skipped.labels(part=part).inc(skipped_keys if part == "key" else 0)


def healthy_ingest(svc: FakeService, n: int) -> None:
    catalog_view(svc)
    m = svc.metrics
    m["metering_ingest_requests_total"].labels(route="/measurements/batch", status="202").inc(10)
    m["metering_ingest_requests_total"].labels(route="/measurements", status="422").inc(0)
    events = m["metering_ingest_events_total"]
    events.labels(outcome="accepted").inc(100)
    events.labels(outcome="rejected").inc(1)
    events.labels(outcome="duplicate").inc(1)
    events.labels(outcome="unavailable").inc(0)
    m["metering_ingest_rejections_total"].labels(field="meter_name").inc(1)
    for _ in range(10):
        m["metering_ingest_kafka_delivery_seconds"].observe(0.004)
    m["metering_ingest_producer_queue_depth"].set(3)


def healthy_aggregator(partitions: tuple[int, ...]) -> Callable[[FakeService, int], None]:
    def tick(svc: FakeService, n: int) -> None:
        catalog_view(svc)
        m = svc.metrics
        events = m["metering_aggregator_events_total"]
        events.labels(outcome="folded").inc(100)
        events.labels(outcome="duplicate").inc(1)
        events.labels(outcome="dead_lettered").inc(0)
        m["metering_aggregator_dedup_hits_total"].inc(1)
        m["metering_aggregator_dedup_store_lookups_total"].inc(1)
        m["metering_aggregator_dead_letters_total"].labels(reason_field="meter_name").inc(0)
        for p in partitions:
            m["metering_aggregator_consumer_lag"].labels(partition=str(p)).set(5 + n % 3)
            m["metering_aggregator_watermark_lag_seconds"].labels(partition=str(p)).set(60 + n % 30)
        m["metering_aggregator_clickhouse_flush_seconds"].observe(0.02)
        for table, rows in (("measurements", 100), ("period_totals", 20), ("watermarks", 2)):
            m["metering_aggregator_clickhouse_rows_total"].labels(table=table).inc(rows)
        m["metering_aggregator_clickhouse_errors_total"].labels(table="measurements").inc(0)
        m["metering_aggregator_ingest_to_stored_seconds"].observe(0.5)
        m["metering_aggregator_period_events_total"].labels(reason="closed").inc(0)
        m["metering_aggregator_period_events_total"].labels(reason="late_usage").inc(0)
        m["metering_aggregator_invoice_dead_letters_total"].inc(0)

    return tick


def healthy_rater(svc: FakeService, n: int) -> None:
    catalog_view(svc)
    m = svc.metrics
    m["metering_rater_periods_closed_total"].inc(0)
    m["metering_rater_invoices_published_total"].labels(kind="invoice").inc(0)
    m["metering_rater_invoices_published_total"].labels(kind="correction").inc(0)
    m["metering_rater_periods_unchanged_total"].inc(0)
    m["metering_rater_invoiced_amount_total"].labels(currency="USD", direction="charged").inc(0)
    m["metering_rater_invoiced_amount_total"].labels(currency="USD", direction="credited").inc(0)
    m["metering_rater_dead_letters_total"].labels(reason="unreadable").inc(0)
    m["metering_rater_dead_letters_total"].labels(reason="unknown_plan").inc(0)
    m["metering_rater_rating_duration_seconds"].observe(0.002)


def broken_ingest(svc: FakeService, n: int) -> None:
    catalog_view(svc, skipped_keys=1)  # someone writes non-UTF-8 keys to the catalog topic
    m = svc.metrics
    m["metering_ingest_requests_total"].labels(route="/measurements/batch", status="202").inc(5)
    m["metering_ingest_requests_total"].labels(route="/measurements/batch", status="503").inc(5)
    events = m["metering_ingest_events_total"]
    events.labels(outcome="accepted").inc(50)
    events.labels(outcome="rejected").inc(50)
    events.labels(outcome="unavailable").inc(50)
    m["metering_ingest_rejections_total"].labels(field="value").inc(50)
    m["metering_ingest_kafka_delivery_seconds"].observe(0.5)
    m["metering_ingest_producer_queue_depth"].set(5000)


def broken_aggregator(svc: FakeService, n: int) -> None:
    """Partition 0's lag grows, partition 1's watermark is stuck, writes fail, and
    periods close that the rater never invoices."""
    catalog_view(svc)
    m = svc.metrics
    m["metering_aggregator_events_total"].labels(outcome="folded").inc(50)
    m["metering_aggregator_events_total"].labels(outcome="dead_lettered").inc(10)
    m["metering_aggregator_dedup_hits_total"].inc(0)
    m["metering_aggregator_dead_letters_total"].labels(reason_field="value").inc(10)
    m["metering_aggregator_consumer_lag"].labels(partition="0").set(5000 * (n + 1))
    m["metering_aggregator_consumer_lag"].labels(partition="1").set(5)
    m["metering_aggregator_watermark_lag_seconds"].labels(partition="0").set(60)
    # computed at collection time, like the service's gauge: the watermark stays put
    m["metering_aggregator_watermark_lag_seconds"].labels(partition="1").set(time.time() - (svc.started - 1000))
    m["metering_aggregator_clickhouse_flush_seconds"].observe(8.0)
    m["metering_aggregator_clickhouse_rows_total"].labels(table="measurements").inc(50)
    m["metering_aggregator_clickhouse_errors_total"].labels(table="measurements").inc(1)
    m["metering_aggregator_ingest_to_stored_seconds"].observe(30)
    m["metering_aggregator_period_events_total"].labels(reason="closed").inc(3)
    m["metering_aggregator_invoice_dead_letters_total"].inc(1)


def broken_rater(svc: FakeService, n: int) -> None:
    # never publishes (the invoices counter has no series at all), and dead-letters some
    # of what it reads: fewer than the aggregator closes, so periods still go missing
    catalog_view(svc)
    svc.metrics["metering_rater_dead_letters_total"].labels(reason="unreadable").inc(1)
    svc.metrics["metering_rater_dead_letters_total"].labels(reason="unknown_plan").inc(1)
    svc.metrics["metering_rater_periods_closed_total"].inc(0)
    svc.metrics["metering_rater_periods_unchanged_total"].inc(0)
    svc.metrics["metering_rater_rating_duration_seconds"].observe(0.002)


SCENARIOS: dict[str, dict[str, list[tuple[str, Callable[[FakeService, int], None]]]]] = {
    "healthy": {
        "metering-ingest": [("ingest", healthy_ingest)],
        "metering-aggregator": [("aggregator", healthy_aggregator((0, 1))), ("aggregator", healthy_aggregator((2, 3)))],
        "metering-rater": [("rater", healthy_rater)],
    },
    "broken": {
        "metering-ingest": [("ingest", broken_ingest)],
        "metering-aggregator": [("aggregator", broken_aggregator), ("aggregator", healthy_aggregator((2, 3)))],
        "metering-rater": [("rater", broken_rater)],
    },
}


@dataclass
class LivePrometheus:
    url: str
    scenario: str

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        try:
            data = self.api("query", query=expr)
        except urllib.error.HTTPError as error:
            raise AssertionError(f"Prometheus rejected {expr!r}: {error.read().decode()}") from None
        assert data["resultType"] == "vector", data
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerting_rules(self) -> list[dict[str, Any]]:
        groups = self.api("rules", type="alert")["groups"]
        return [rule for group in groups for rule in group["rules"]]


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePrometheus]:
    prometheus = tool("prometheus")
    scenario = request.param
    folder = tmp_path_factory.mktemp(f"prometheus-{scenario}")
    services: list[FakeService] = []
    scrape_configs = []
    for job, members in SCENARIOS[scenario].items():
        targets = []
        for component, tick in members:
            service = FakeService(component, tick)
            services.append(service)
            targets.append(f"127.0.0.1:{service.start()}")
        if scenario == "broken" and job == "metering-rater":
            targets.append(f"127.0.0.1:{free_port()}")  # a target that does not answer
        scrape_configs.append({"job_name": job, "static_configs": [{"targets": targets}]})
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS_FILE)],
        "scrape_configs": scrape_configs,
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (folder / "prometheus.log").open("w")
    process = subprocess.Popen(
        [prometheus, f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    live = LivePrometheus(f"http://127.0.0.1:{port}", scenario)
    try:
        _wait(lambda: urllib.request.urlopen(f"{live.url}/-/ready", timeout=1).status == 200, 30, "Prometheus")
        expected_targets = sum(len(members) for members in SCENARIOS[scenario].values()) + (scenario == "broken")

        def scraped_enough() -> bool:
            counts = live.query('count_over_time(up{job=~"metering-.*"}[5m])')
            return len(counts) == expected_targets and min(float(c["value"][1]) for c in counts) >= 6

        _wait(scraped_enough, 60, "six scrapes of every target")
        yield live
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        for service in services:
            service.stop()


@pytest.mark.parametrize("name,expr", DASHBOARD_EXPRESSIONS, ids=[n for n, _ in DASHBOARD_EXPRESSIONS])
def test_dashboard_expression_runs_and_shows_data(live: LivePrometheus, name: str, expr: str) -> None:
    result = live.query(expr)
    if live.scenario != "healthy":
        return
    assert result, f"{name}: no data from {expr!r}"
    legend = next(t["legendFormat"] for n, t in prometheus_targets() if n == name)
    for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", legend):
        assert all(label in series["metric"] for series in result), f"{name}: legend label {label} missing"


@pytest.mark.parametrize("name,expr", ALERT_EXPRESSIONS, ids=[n for n, _ in ALERT_EXPRESSIONS])
def test_alert_expression_fires_only_when_broken(live: LivePrometheus, name: str, expr: str) -> None:
    result = live.query(expr)
    if live.scenario == "healthy":
        assert result == [], f"{name} would fire on a healthy pipeline: {result}"
    else:
        assert result, f"{name} does not fire on the broken pipeline"


def test_prometheus_loads_and_evaluates_every_rule(live: LivePrometheus) -> None:
    names = {name for name, _ in ALERT_EXPRESSIONS}
    if live.scenario == "broken":
        _wait(lambda: all(r["state"] != "inactive" for r in live.alerting_rules()), 30, "every alert to trigger")
    rules = live.alerting_rules()
    assert {rule["name"] for rule in rules} == names
    for rule in rules:
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
        if live.scenario == "healthy":
            assert rule["state"] == "inactive", (rule["name"], rule["alerts"])
        else:
            assert rule["state"] in {"pending", "firing"}, rule["name"]
