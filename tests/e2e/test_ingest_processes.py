"""The ingest service as two processes on one port (METERING_INGEST_PROCESSES=2), run by
the stack as `metering up` runs it: both serve, /metrics and /readyz tell the truth
whichever process answers, a killed process is replaced (a killed group is restarted by
the stack), and no measurement answered 202 is lost on the way, nor when the group is
stopped with requests in flight."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from confluent_kafka import Consumer
from prometheus_client.multiprocess import MultiProcessCollector

from services.infra import topics
from services.infra.catalog_view import publish_catalog
from services.infra.stack import Stack
from services.ingest.process_group import metrics_directory
from services.settings import Settings
from shared.catalog import parse_catalog
from tests.e2e.streaming import auth
from tests.support.catalogs import worked_example_catalog
from tests.support.kafka import measurements_in
from tests.support.processes import alive, workers_of

pytestmark = [pytest.mark.e2e, pytest.mark.kafka]

BATCH = 200
ACCEPTED = re.compile(r'^metering_ingest_events_total\{outcome="accepted"\} ([0-9.e+]+)$', re.M)


@pytest.fixture
def group(pipeline_settings: Settings) -> Iterator[Stack]:
    settings = pipeline_settings.updated(http={"ingest_processes": 2})
    with Stack(settings, log_dir=settings.data_dir / "logs", services=("ingest",)) as stack:
        catalog, problems = parse_catalog(worked_example_catalog(datetime.now(UTC) - timedelta(days=2)))
        assert problems == []
        publish_catalog(stack.settings, stack.bootstrap, catalog)
        yield stack


def _ready_answers(stack: Stack, requests: int = 16) -> list[dict[str, object]]:
    """/readyz on fresh connections, several at once, so that any process may answer each."""
    def ask(_: int) -> dict[str, object]:
        response = httpx.get(f"{stack.ingest_url}/readyz", headers={"Connection": "close"}, timeout=10)
        answer: dict[str, object] = response.json()
        answer["status"] = response.status_code
        return answer

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(ask, range(requests)))


def _until_each_answered(stack: Stack, pids: set[int], timeout: float = 90.0) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    answers: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):  # a process starting or stopping meanwhile
            answers += _ready_answers(stack)
        if pids <= {a["process"] for a in answers}:
            return answers
        time.sleep(0.2)
    raise AssertionError(f"not every process of {pids} answered: {sorted({str(a['process']) for a in answers})}")


def _accepted_at_metrics(stack: Stack) -> float:
    text = httpx.get(f"{stack.ingest_url}/metrics", headers={"Connection": "close"}, timeout=10).text
    match = ACCEPTED.search(text)
    assert match is not None
    return float(match.group(1))


def _accepted_by_process(stack: Stack) -> dict[int, float]:
    """Each process's own count, from the file it writes its metrics to."""
    counts = {}
    for path in metrics_directory(stack.settings).glob("counter_*.db"):
        for metric in MultiProcessCollector.merge([str(path)]):
            for sample in metric.samples:
                if sample.name == "metering_ingest_events_total" and sample.labels == {"outcome": "accepted"}:
                    counts[int(path.stem.split("_")[1])] = sample.value
    return counts


def _ids_on_topic(stack: Stack, expected: set[str], timeout: float = 60.0) -> set[str]:
    consumer = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": f"check-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topics.name(stack.settings, topics.MEASUREMENTS)])
    found: set[str] = set()
    deadline = time.monotonic() + timeout
    try:
        while not expected <= found and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                if message.error() is None:
                    found.update(str(m["id"]) for m in measurements_in(message.value()))
    finally:
        consumer.close()
    return found


@dataclass
class Senders:
    """Threads posting batches of new measurements until stopped, over kept-alive
    connections (or a new one per batch), counting what was answered 202 and when; a
    refused or broken request is not retried."""

    stack: Stack
    threads: int = 6
    keep_alive: bool = True
    accepted: set[str] = field(default_factory=set)
    answered_at: list[tuple[float, float]] = field(default_factory=list)  # (sent, answered) of each 202
    failures: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _running: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Senders:
        self._running = [threading.Thread(target=self._send, args=(n,), daemon=True) for n in range(self.threads)]
        for thread in self._running:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._running:
            thread.join(60)

    def _send(self, n: int) -> None:
        run = uuid.uuid4().hex[:8]
        url = f"{self.stack.ingest_url}/measurements/batch"
        headers = auth(self.stack) | ({} if self.keep_alive else {"Connection": "close"})
        with httpx.Client(headers=headers, timeout=30) as client:
            k = 0
            while not self._stop.is_set():
                ids = [f"{run}-{n}-{k}-{i}" for i in range(BATCH)]
                k += 1
                batch = [{"id": i, "meter_name": "api_calls", "customer_name": "acme", "value": 1} for i in ids]
                sent = time.monotonic()
                try:
                    response = client.post(url, json=batch)
                except httpx.HTTPError:
                    response = None
                with self._lock:
                    if response is not None and response.status_code == 202:
                        self.accepted.update(ids)
                        self.answered_at.append((sent, time.monotonic()))
                    else:
                        self.failures += 1
                if response is None or response.status_code != 202:
                    time.sleep(0.1)

    def wait_for(self, measurements: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.accepted) < measurements and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.accepted) >= measurements, f"only {len(self.accepted)} accepted"


def test_both_processes_serve_and_metrics_and_readiness_tell_the_truth(group: Stack) -> None:
    parent = group.children["ingest"].pid
    workers = workers_of(parent)
    assert len(workers) == 2
    # Readiness: every answer is a process's own (its producer and its catalog view).
    answers = _until_each_answered(group, workers)
    assert all(a["status"] == 200 and a["ready"] is True for a in answers)
    assert all(a["checks"] == {"broker": True, "catalog": True} for a in answers)

    # A new connection per batch: a handful of kept-alive connections opened at once may all
    # be accepted by one process (docs/decisions.md, "accept balance"), most of all when the
    # other is slow to wake on a loaded machine; fresh connections reach whichever is free.
    senders = Senders(group, keep_alive=False).start()
    try:
        senders.wait_for(20_000)
    finally:
        senders.stop()
    accepted = len(senders.accepted)
    assert senders.failures == 0
    by_process = _accepted_by_process(group)
    assert set(by_process) == workers and all(count > 0 for count in by_process.values()), by_process
    assert sum(by_process.values()) == accepted
    # Whichever process answers the scrape, the total is the group's.
    assert [_accepted_at_metrics(group) for _ in range(6)] == [accepted] * 6
    assert _ids_on_topic(group, senders.accepted) >= senders.accepted


def test_a_killed_process_is_replaced_and_no_accepted_measurement_is_lost(group: Stack) -> None:
    parent = group.children["ingest"].pid
    workers = workers_of(parent)
    _until_each_answered(group, workers)
    senders = Senders(group).start()
    try:
        senders.wait_for(4_000)
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        # The group's parent replaces it; the other process serves meanwhile.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and (len(workers_of(parent)) != 2 or victim in workers_of(parent)):
            time.sleep(0.2)
        replaced = workers_of(parent)
        assert len(replaced) == 2 and victim not in replaced
        _until_each_answered(group, replaced)
        senders.wait_for(len(senders.accepted) + 4_000)
        assert group.children["ingest"].pid == parent  # the group itself did not restart

        # A killed group: the stack starts a new one; the old workers follow their parent out.
        os.kill(parent, signal.SIGKILL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and group.children["ingest"].pid == parent:
            time.sleep(0.2)
        new_parent = group.children["ingest"].pid
        assert new_parent != parent
        while time.monotonic() < deadline and (any(alive(pid) for pid in replaced) or len(workers_of(new_parent)) < 2):
            time.sleep(0.2)
        assert not any(alive(pid) for pid in replaced), "a worker outlived its killed parent"
        _until_each_answered(group, workers_of(new_parent))
        senders.wait_for(len(senders.accepted) + 4_000)
    finally:
        senders.stop()
    assert _ids_on_topic(group, senders.accepted) >= senders.accepted
    # The new group counts from zero; every process of it is ready.
    assert 0 < _accepted_at_metrics(group) <= len(senders.accepted)
    assert all(a["status"] == 200 for a in _ready_answers(group))


def test_stopping_the_group_drains_the_requests_in_flight(group: Stack) -> None:
    child = group.children["ingest"]
    workers = workers_of(child.pid)
    _until_each_answered(group, workers)
    senders = Senders(group, threads=8).start()
    try:
        senders.wait_for(10_000)
        signalled = time.monotonic()
        group.stop()  # SIGTERM to the group, as `metering up` and Kubernetes stop it
    finally:
        senders.stop()
    assert child.returncode == 0
    assert not any(alive(pid) for pid in workers)
    # Requests that were in flight when the signal came were answered 202, after it:
    drained = [(sent, answered) for sent, answered in senders.answered_at if sent < signalled < answered]
    assert drained, "no request was in flight at the signal"
    # ... and, like every 202, only once the broker had their measurements.
    assert _ids_on_topic(group, senders.accepted) >= senders.accepted
