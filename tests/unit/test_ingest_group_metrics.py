"""/metrics of an ingest process group (services/ingest/group_metrics.py): what the
processes counted adds up, under the names, types and labels of the metric contract, and
the group's process_* series cover every process of it."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.multiprocess import mark_process_dead
from prometheus_client.parser import text_string_to_metric_families

from services.ingest.api import create_app
from services.ingest.group_metrics import (
    METRICS_VARIABLE,
    GroupProcessCollector,
    ProcessStat,
    group_members,
    group_registry,
)
from services.settings import HttpSettings, Settings
from shared.catalog import Catalog
from tests.ops.metrics_catalog import CATALOG
from tests.unit.test_ingest_api import FakeSink, FakeView

SPAWN = multiprocessing.get_context("spawn")


def _serve(accepted_batches: int, rejected_values: int, queue_depth: int) -> None:
    """What one ingest process counts, in a fresh interpreter that sees METRICS_VARIABLE."""
    from services.infra.catalog_view import SKIPPED
    from services.ingest.metrics import DELIVERY, EVENTS, QUEUE, REJECTIONS, REQUESTS

    for _ in range(accepted_batches):
        EVENTS.labels("accepted").inc(100)
        REQUESTS.labels("batch", "202").inc()
        DELIVERY.observe(0.02)
    REJECTIONS.labels("value").inc(rejected_values)
    SKIPPED.labels("key").inc()  # each process's own catalog view skips the same record
    QUEUE.set(queue_depth)


def _run_in_process(*args: int) -> int:
    process = SPAWN.Process(target=_serve, args=args)
    process.start()
    process.join(60)
    assert process.exitcode == 0
    assert process.pid is not None
    return process.pid


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples
    }


def _exposition(directory: Path) -> str:
    from prometheus_client import generate_latest

    return generate_latest(group_registry(str(directory), os.getpid())).decode()


@pytest.fixture
def metric_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(METRICS_VARIABLE, str(tmp_path))
    return tmp_path


def test_what_two_processes_counted_adds_up(metric_files: Path) -> None:
    first = _run_in_process(3, 1, 30)
    _run_in_process(5, 2, 50)
    samples = _samples(_exposition(metric_files))
    assert samples[("metering_ingest_events_total", (("outcome", "accepted"),))] == 800
    assert samples[("metering_ingest_events_total", (("outcome", "rejected"),))] == 0
    assert samples[("metering_ingest_requests_total", (("route", "batch"), ("status", "202")))] == 8
    assert samples[("metering_ingest_rejections_total", (("field", "value"),))] == 3
    assert samples[("metering_ingest_kafka_delivery_seconds_count", ())] == 8
    assert samples[("metering_ingest_kafka_delivery_seconds_sum", ())] == pytest.approx(0.16)
    assert samples[("metering_ingest_kafka_delivery_seconds_bucket", (("le", "0.025"),))] == 8
    assert samples[("metering_ingest_kafka_delivery_seconds_bucket", (("le", "0.01"),))] == 0
    assert samples[("metering_catalog_records_skipped_total", (("part", "key"),))] == 2
    assert samples[("metering_ingest_producer_queue_depth", ())] == 80

    # A process that is gone (the group's parent says so) keeps its counts in the totals
    # but no longer adds its last queue depth.
    mark_process_dead(first, str(metric_files))
    samples = _samples(_exposition(metric_files))
    assert samples[("metering_ingest_events_total", (("outcome", "accepted"),))] == 800
    assert samples[("metering_ingest_producer_queue_depth", ())] == 50


def test_the_group_exports_the_contract_names_types_and_labels(metric_files: Path) -> None:
    _run_in_process(1, 1, 1)
    families = {f.name: f for f in text_string_to_metric_families(_exposition(metric_files))}
    exported = {name: family for name, family in families.items() if name.startswith("metering_")}
    # The parser names a counter without its _total suffix.
    contract = {name.removesuffix("_total"): metric for name, metric in CATALOG["ingest"].items()}
    assert set(exported) == set(contract)
    for name, family in exported.items():
        assert family.type == contract[name].kind, name
        labels = {key for sample in family.samples for key in sample.labels if key != "le"}
        assert labels == set(contract[name].labels), name
    # And the series the dashboards' process panels read.
    assert {"process_resident_memory_bytes", "process_cpu_seconds", "process_open_fds", "python_info"} <= set(families)


def test_metrics_answers_for_the_group_whichever_process_is_asked(metric_files: Path) -> None:
    _run_in_process(2, 0, 0)
    _run_in_process(4, 0, 0)
    app = create_app(Settings(http=HttpSettings(api_key="k")), FakeView(Catalog()), FakeSink())
    response = TestClient(app).get("/metrics")
    assert response.status_code == 200
    assert _samples(response.text)[("metering_ingest_events_total", (("outcome", "accepted"),))] == 600


def _burn(seconds: float) -> None:
    deadline = time.process_time() + seconds
    while time.process_time() < deadline:
        pass


def _series(collector: GroupProcessCollector) -> dict[str, float]:
    return {sample.name: sample.value for family in collector.collect() for sample in family.samples}


def test_the_group_process_series_cover_every_process_and_cpu_never_goes_down() -> None:
    # This test process stands for the group's parent; its spawned children are the group.
    collector = GroupProcessCollector(os.getpid())
    before = _series(collector)
    worker = SPAWN.Process(target=_burn, args=(0.6,))
    worker.start()
    time.sleep(0.3)
    during = _series(collector)
    members = {m.pid for m in group_members(os.getpid())}
    assert os.getpid() in members and worker.pid in members
    own = ProcessStat.read(os.getpid())
    assert own is not None and during["process_resident_memory_bytes"] > own.resident_bytes
    worker.join(30)
    after = _series(collector)  # the worker is gone: its CPU is now the parent's reaped-children CPU
    assert worker.pid not in {m.pid for m in group_members(os.getpid())}
    cpu = [series["process_cpu_seconds_total"] for series in (before, during, after)]
    assert cpu == sorted(cpu) and cpu[2] - cpu[0] >= 0.5
    assert after["process_start_time_seconds"] == before["process_start_time_seconds"]
    assert after["process_open_fds"] >= 3 and after["process_max_fds"] > 0


def test_a_group_whose_parent_is_gone_has_no_process_series(tmp_path: Path) -> None:
    (tmp_path / "stat").write_text("btime 1700000000\n")
    assert list(GroupProcessCollector(123, proc=tmp_path).collect()) == []
