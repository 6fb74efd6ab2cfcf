"""The ingest group's supervision (services/ingest/process_group.py, worker_liveness.py),
on a tiny app without Kafka (tests/support/worker_group.py): a worker slow to answer its
first ping is waited for, a worker that stops answering is replaced, one that pauses for
less than its deadline is kept, and the group still stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.processes import alive, workers_of

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def _group(tmp_path: Path, startup: float, unresponsive: float, slow_start: float = 0.0) -> Iterator[Group]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (tmp_path / "group.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.worker_group", str(port), str(tmp_path / "metrics"),
         str(startup), str(unresponsive)],
        cwd=ROOT, env={**os.environ, "SLOW_START": str(slow_start)}, stdout=log, stderr=log,
    )
    group = Group(process, port, tmp_path / "group.log")
    try:
        yield group
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


class Group:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process, self.port, self.log = process, port, log

    def workers(self) -> set[int]:
        return workers_of(self.process.pid)

    def answering(self, expected: set[int], timeout: float = 90.0) -> set[int]:
        """Ask on fresh connections until each of `expected` answered; what answered."""
        deadline = time.monotonic() + timeout
        seen: set[int] = set()
        while time.monotonic() < deadline and not expected <= seen:
            try:
                response = httpx.get(f"http://127.0.0.1:{self.port}/", headers={"Connection": "close"}, timeout=5)
                seen.add(int(response.text))
            except httpx.HTTPError:
                time.sleep(0.2)
        assert expected <= seen, f"{expected} did not all answer: {seen}; log: {self.log.read_text()}"
        return seen

    def two_workers(self, timeout: float = 60.0) -> set[int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.workers()) != 2:
            time.sleep(0.1)
        found = self.workers()
        assert len(found) == 2, found
        return found

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)


def test_a_worker_slow_to_answer_its_first_ping_is_waited_for(tmp_path: Path) -> None:
    # 7 s before it can answer: uvicorn's 5 s killed such workers, one after the other.
    with _group(tmp_path, startup=60, unresponsive=2, slow_start=7) as group:
        started = group.two_workers()
        group.answering(started)
        assert group.workers() == started
        assert group.stop() == 0
    assert "answered no ping" not in group.log.read_text()
    assert not any(alive(pid) for pid in started)


def test_a_worker_that_stops_answering_is_replaced_and_a_short_pause_is_not_punished(tmp_path: Path) -> None:
    with _group(tmp_path, startup=60, unresponsive=5) as group:
        started = group.two_workers()
        group.answering(started)
        frozen = min(started)

        os.kill(frozen, signal.SIGSTOP)  # shorter than its deadline: kept
        time.sleep(1)
        os.kill(frozen, signal.SIGCONT)
        time.sleep(6)
        assert group.workers() == started

        os.kill(frozen, signal.SIGSTOP)  # for good: killed and replaced
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (frozen in group.workers() or len(group.workers()) != 2):
            time.sleep(0.2)
        replaced = group.workers()
        assert frozen not in replaced and len(replaced) == 2 and started - {frozen} <= replaced
        group.answering(replaced)
        assert group.stop() == 0
    assert f"ingest process {frozen} answered no ping" in group.log.read_text()
    assert not alive(frozen)
