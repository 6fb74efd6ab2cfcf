"""services.infra.stop_deadline: a worker told to stop ends within its grace, even stuck."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

import faust
import pytest

from services.aggregator.worker import BoundedStopWorker
from services.infra.stop_deadline import EXIT_AFTER_DEADLINE, StopDeadline
from services.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


class ExitRecorder:
    def __init__(self) -> None:
        self.codes: list[int] = []
        self.called = threading.Event()

    def __call__(self, code: int) -> None:
        self.codes.append(code)
        self.called.set()


def test_an_armed_deadline_ends_the_process_with_a_stop_code(caplog: pytest.LogCaptureFixture) -> None:
    exits = ExitRecorder()
    deadline = StopDeadline(0.05, exits)
    deadline.arm()
    assert exits.called.wait(5)
    assert exits.codes == [EXIT_AFTER_DEADLINE]
    assert "did not stop within" in caplog.text and "METERING_STOP_GRACE_SECONDS" in caplog.text


def test_an_unarmed_deadline_does_nothing() -> None:
    exits = ExitRecorder()
    deadline = StopDeadline(0.01, exits)
    time.sleep(0.1)
    assert not deadline.armed and not exits.called.is_set()


def test_a_second_stop_keeps_the_first_deadline() -> None:
    exits = ExitRecorder()
    deadline = StopDeadline(0.3, exits)
    deadline.arm()
    time.sleep(0.2)
    deadline.arm()  # a SIGTERM after the SIGINT must not push the exit further away
    assert exits.called.wait(0.6), "the exit came 0.3 s after the first arm, not after the second"
    time.sleep(0.4)
    assert exits.codes == [EXIT_AFTER_DEADLINE], "one exit, however often it was armed"


def test_the_aggregator_worker_arms_its_deadline_when_its_stop_begins() -> None:
    app = faust.App("stop-deadline-test", broker="kafka://127.0.0.1:9", autodiscover=False)
    worker = BoundedStopWorker(app, quiet=True, override_logging=False)
    exits = ExitRecorder()
    worker.deadline = StopDeadline(0.05, exits)
    asyncio.run(worker.on_stop())
    assert worker.deadline.armed
    assert exits.called.wait(5)


def test_the_default_grace_ends_before_a_kubernetes_sigkill() -> None:
    # terminationGracePeriodSeconds defaults to 30: exiting first leaves the last log lines.
    assert 0 < Settings().kafka.stop_grace_seconds < 30


# A process whose main thread (its event loop, in a worker) is stuck for good.
STUCK = """
import logging, sys, time
logging.basicConfig(stream=sys.stderr, level=logging.INFO)
from services.infra.stop_deadline import StopDeadline
StopDeadline(0.5).arm()
time.sleep(600)
"""


def test_a_process_stuck_in_its_stop_exits_after_the_grace() -> None:
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-c", STUCK], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == EXIT_AFTER_DEADLINE, done.stderr[-2000:]
    assert time.monotonic() - began < 30
    assert "did not stop within" in done.stderr
