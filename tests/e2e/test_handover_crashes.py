"""Issue 11: a worker SIGKILLed while a rebalance hands partitions to a second worker.

Measurements of every meter kind flow the whole time (single records, envelopes, records
in the wrong partition, identical retries). A second aggregator joins the group, and one
of the two is killed at a step of the handover (services/aggregator/faults.py):
- the first worker, told its partitions are revoked ("on_revoke"), or just after it read
  the state of the partitions the new assignment gave it ("after_load");
- the second worker, just after it read the state of the partitions it took over, or
  after it folded its first batch of them and logged their state but before its offsets
  were committed ("after_state").
Once the second worker has gone again, the first worker's store must hold exactly the
totals of a plain batch computation over the deduplicated input.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from services.aggregator.faults import HANDOVER_POINTS, POINTS
from services.infra import topics
from services.infra.catalog_view import publish_catalog
from services.infra.ports import free_port
from services.infra.stack import Stack
from services.settings import settings_env
from shared.catalog import parse_catalog
from tests.e2e.streaming import (
    KINDS,
    await_totals,
    delivery_order,
    measurements,
    scenario_catalog,
    subscription_window,
    utc_now,
)
from tests.support.faults import fault_control
from tests.support.oracle import MeterSpec, expected_totals
from tests.support.pipeline import SMALL_SLICE_BYTES, pipeline_settings

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse]

SLICE = 25  # deliveries per produce call
PACE_SECONDS = 0.1  # between two slices: about 250 deliveries/s while the handover runs


@pytest.fixture(scope="module")
def control(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The first worker's fault control file (the stack's aggregator inherits it)."""
    with fault_control(tmp_path_factory.mktemp("handover-faults") / "control") as path:
        yield path


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, clickhouse_url: str | None, control: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("handover")
    settings = pipeline_settings(
        kafka_bootstrap, clickhouse_url, root, tag="hand",
        kafka={"session_timeout_seconds": 6.0}, event_time={"housekeeping_seconds": 5.0},
        limits={"aggregator_slice_bytes": SMALL_SLICE_BYTES},
    )
    with Stack(settings, log_dir=root / "logs") as running:
        yield running


@dataclass
class Flow:
    """Produces `deliveries` in paced slices from a thread, as a steady stream of traffic.

    The first `head` deliveries go out at the pace; then, until finish() is called, the
    stream goes on with identical retries of what was already sent (so the handover
    always happens under load, however long it takes), and the rest goes out at once.
    Slices rotate through three forms: single records keyed by customer (murmur2),
    envelopes of one customer's measurements, and single records in a partition that is
    not their customer's (librdkafka's CRC32 partitioner), which the aggregator forwards.
    """

    bootstrap: str
    topic: str
    deliveries: list[dict[str, Any]]
    head: int
    sent: int = 0
    _finish: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _error: BaseException | None = None

    def start(self) -> Flow:
        self._thread = threading.Thread(target=self._run, name="flow", daemon=True)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def finish(self, timeout: float = 120) -> None:
        self._finish.set()
        assert self._thread is not None
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the producer thread did not finish"
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            rng = random.Random(11)
            producers = [
                Producer({"bootstrap.servers": self.bootstrap, "enable.idempotence": True, "acks": "all",
                          "partitioner": partitioner, "linger.ms": 5})
                for partitioner in ("murmur2_random", "consistent_random")
            ]
            turn = 0
            while self.sent < self.head:
                self._send(producers, turn, self.deliveries[self.sent:min(self.sent + SLICE, self.head)])
                turn += 1
                time.sleep(PACE_SECONDS)
            while not self._finish.is_set():
                self._send(producers, turn, rng.sample(self.deliveries[:self.head], SLICE))
                turn += 1
                time.sleep(PACE_SECONDS)
            for start in range(self.head, len(self.deliveries), SLICE):
                self._send(producers, turn, self.deliveries[start:start + SLICE])
                turn += 1
            for producer in producers:
                assert producer.flush(30) == 0
        except Exception as error:  # noqa: BLE001 - any failure of the producer thread is reported by finish()
            self._error = error

    def _send(self, producers: list[Producer], turn: int, records: list[dict[str, Any]]) -> None:
        form = turn % 3
        if form == 1:
            by_customer: dict[str, list[dict[str, Any]]] = {}
            for record in records:
                by_customer.setdefault(record["customer_name"], []).append(record)
            for customer, items in by_customer.items():
                producers[0].produce(self.topic, key=customer.encode(), value=json.dumps(items).encode())
        else:
            producer = producers[1] if form == 2 else producers[0]
            for record in records:
                producer.produce(self.topic, key=record["customer_name"].encode(), value=json.dumps(record).encode())
        for producer in producers:
            producer.poll(0)
        self.sent += len(records)


@dataclass
class SecondWorker:
    """Another aggregator of the same group, with a store and a fault control of its own."""

    process: subprocess.Popen[bytes]
    ready_url: str
    control: Path
    log: Path

    @classmethod
    def start(cls, stack: Stack, folder: Path, armed: str = "") -> SecondWorker:
        # The embedded engine lets one process own a data folder: the second worker has
        # a store of its own. The first worker's store ends exact all the same, because
        # a worker that takes a partition over reads its state from the state log and
        # rewrites the partition's absolute totals to its store (ticks.py, _resync).
        settings = stack.settings.updated(data_dir=folder / "data", http={"aggregator_port": free_port()})
        folder.mkdir(parents=True, exist_ok=True)
        control = folder / "control"
        control.write_text(armed)
        log = folder / "worker.log"
        env = {**os.environ, **settings_env(settings), "METERING_FAULT_FILE": str(control)}
        with log.open("wb") as out:
            process = subprocess.Popen([sys.executable, "-m", "services.cli", "aggregator"], env=env,
                                       stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return cls(process, f"http://127.0.0.1:{settings.http.aggregator_port}/readyz", control, log)

    def await_ready(self, timeout: float = 120) -> None:
        """Joined the group, read its partitions' state and owns some."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the second worker exited: {self.log.read_text()[-3000:]}"
            try:
                if httpx.get(self.ready_url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise AssertionError("the second worker never became ready")

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        assert self.process.wait(timeout=120) == 0
        text = self.log.read_text(errors="replace")
        assert "Traceback" not in text, text[-3000:]

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)


def _await(condition: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting until {what}")


Scenario = tuple[Any, dict[str, list[MeterSpec]], dict[str, list[dict[str, Any]]], list[dict[str, Any]]]


def _scenario(stack: Stack, prefix: str) -> Scenario:
    rng = random.Random(prefix)
    customers = [f"{prefix}-{uuid.uuid4().hex[:6]}-{i}" for i in range(4)]
    meters_of = {c: [MeterSpec(f"{c}-{i}", t, a, inc) for i, (t, a, inc) in enumerate(KINDS)] for c in customers}
    now = utc_now()
    start, periods = subscription_window(now)
    records: dict[str, list[dict[str, Any]]] = {}
    deliveries: list[dict[str, Any]] = []
    for customer in customers:
        catalog, problems = parse_catalog(scenario_catalog(customer, meters_of[customer], start))
        assert problems == []
        publish_catalog(stack.settings, stack.bootstrap, catalog)
        records[customer] = measurements(rng, customer, meters_of[customer], 900, now)
        deliveries += delivery_order(rng, records[customer], 0.1)
    rng.shuffle(deliveries)
    return periods, meters_of, records, deliveries


def _assert_exact(stack: Stack, periods: Any, meters_of: dict[str, list[MeterSpec]],
                  records: dict[str, list[dict[str, Any]]]) -> None:
    for customer, recs in records.items():
        expected = expected_totals(meters_of[customer], recs, periods, open_index=1)
        stored = await_totals(stack, customer, expected, timeout=120)
        differing = {k: (stored.get(k), expected.get(k)) for k in set(stored) | set(expected)
                     if stored.get(k) != expected.get(k)}
        assert differing == {}, f"{customer}: (stored, expected) differ"


def test_the_handover_points_are_not_flush_points() -> None:
    # test_crash_points.py arms every flush point on a lone worker: a handover point
    # there would never fire.
    assert set(HANDOVER_POINTS).isdisjoint(POINTS)


@pytest.mark.parametrize(("victim", "point"), [
    ("first", "on_revoke"), ("first", "after_load"), ("second", "after_load"), ("second", "after_state"),
])
def test_a_sigkill_during_a_handover_loses_and_doubles_nothing(
    stack: Stack, control: Path, tmp_path: Path, victim: str, point: str
) -> None:
    periods, meters_of, records, deliveries = _scenario(stack, f"{victim[0]}{point[:6]}")
    flow = Flow(stack.bootstrap, topics.name(stack.settings, topics.MEASUREMENTS), deliveries,
                head=len(deliveries) * 2 // 3)
    first_pid = stack.children["aggregator"].pid
    control.write_text(point if victim == "first" else "")
    second: SecondWorker | None = None
    try:
        flow.start()
        _await(lambda: flow.sent >= len(deliveries) // 5, "a fifth of the input is sent")
        joined = second = SecondWorker.start(stack, tmp_path / "second", armed=point if victim == "second" else "")
        sent_at_join = flow.sent
        if victim == "first":
            _await(lambda: control.read_text() == f"fired {point}" and stack.children["aggregator"].pid != first_pid,
                   f"the first worker was killed at {point} and restarted")
            killed_at = flow.sent
            joined.await_ready()
        else:
            _await(lambda: joined.control.read_text() == f"fired {point}" and joined.process.poll() is not None,
                   f"the second worker was killed at {point}")
            assert joined.process.returncode == -signal.SIGKILL
            killed_at = flow.sent
        assert sent_at_join < killed_at, "no measurement was sent while the partitions were handed over"
        time.sleep(3)  # traffic on after the kill, while the group settles
        flow.finish()
        if victim == "first":
            joined.stop()  # its partitions come back to the first worker
        _assert_exact(stack, periods, meters_of, records)
    finally:
        control.write_text("")
        if second is not None:
            second.kill()
        if flow.running:
            flow.finish()
