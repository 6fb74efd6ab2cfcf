"""The whole pipeline on one machine: broker (unless configured), topics, three services.

Used by `metering up` (foreground until Ctrl-C/SIGTERM), by `metering demo` and by the
end-to-end tests. Each service is its own process, exactly as in production; a service
that exits unexpectedly is restarted with backoff (services/infra/restart_policy.py).
The ingest service may be a group of processes (METERING_INGEST_PROCESSES): its parent
restarts a worker that died (services/ingest/process_group.py); this restarts the group.
Stop order: ingest (no new input), rater, aggregator, then the broker.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from services.infra.kafka_broker import LocalKafkaBroker
from services.infra.processes import spawn, terminate
from services.infra.restart_policy import RestartBackoff
from services.infra.topics import ensure_topics
from services.settings import Settings, settings_env

log = logging.getLogger("metering.stack")

SERVICES = ("aggregator", "rater", "ingest")
STOP_ORDER = ("ingest", "rater", "aggregator")
WATCH_SECONDS = 1.0  # how often the supervisor looks for exited services


@dataclass
class Stack:
    settings: Settings
    log_dir: Path | None = None  # None: children write to this terminal
    services: tuple[str, ...] = SERVICES  # a subset runs only those (the bench: ingest alone)
    broker: LocalKafkaBroker | None = None
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _watcher: threading.Thread | None = None
    _logs: list[IO[bytes]] = field(default_factory=list)
    _started: dict[str, float] = field(default_factory=dict)  # monotonic spawn time per service
    _backoff: dict[str, RestartBackoff] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        assert self.settings.kafka.bootstrap_servers is not None
        return self.settings.kafka.bootstrap_servers

    @property
    def ingest_url(self) -> str:
        return f"http://{self.settings.http.host}:{self.settings.http.port}"

    @property
    def aggregator_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.http.aggregator_port}"

    def start(self, timeout: float = 180.0) -> Stack:
        # finally, not except: a Ctrl-C (KeyboardInterrupt) during the start must stop the
        # children already launched as surely as an error does.
        started = False
        try:
            stack = self._start(timeout)
            started = True
            return stack
        finally:
            if not started:
                self.stop()

    def _start(self, timeout: float) -> Stack:
        if self.settings.kafka.bootstrap_servers is None:
            self.broker = LocalKafkaBroker(self.settings.data_dir / "kafka").start()
            self.settings = self.settings.updated(kafka={"bootstrap_servers": self.broker.bootstrap_servers})
        ensure_topics(self.settings, self.bootstrap)
        ports = {"aggregator": self.settings.http.aggregator_port, "rater": self.settings.http.rater_port}
        peers = [f"http://127.0.0.1:{port}/readyz" for name, port in ports.items() if name in self.services]
        self.settings = self.settings.updated(http={"ready_peers": peers})
        for name in SERVICES:
            if name in self.services:
                self._launch(name)
        self.wait_ready(timeout)
        self._watcher = threading.Thread(target=self._watch, name="stack-watch", daemon=True)
        self._watcher.start()
        return self

    def _launch(self, name: str) -> None:
        self.children[name] = self._spawn(name)
        self._started[name] = time.monotonic()

    def _spawn(self, name: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, **settings_env(self.settings)}
        out: int | None = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            handle = (self.log_dir / f"{name}.log").open("ab")  # open for the child's life; stop() closes it
            self._logs.append(handle)
            out = handle.fileno()
        return spawn([sys.executable, "-m", "services.cli", name], env=env, stdout=out, stderr=out)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"{self.ingest_url}/readyz"
        last = "no answer"
        while time.monotonic() < deadline:
            for name, child in self.children.items():
                if child.poll() is not None:
                    raise RuntimeError(f"{name} exited with code {child.returncode} while starting")
            try:
                response = httpx.get(url, timeout=3.0)
                if response.status_code == 200:
                    return
                last = response.text
            except httpx.HTTPError as error:
                last = str(error)
            time.sleep(0.5)
        raise RuntimeError(f"pipeline not ready after {timeout:.0f}s: {last}")

    def _watch(self) -> None:
        while not self._stopping.wait(WATCH_SECONDS):
            for name, child in list(self.children.items()):
                code = child.poll()
                if code is None or self._stopping.is_set():
                    continue
                ran_for = time.monotonic() - self._started.get(name, time.monotonic())
                delay = self._backoff.setdefault(name, RestartBackoff()).delay(ran_for)
                log.error("%s exited with code %s after %.0fs; restarting in %.0fs", name, code, ran_for, delay)
                if self._stopping.wait(delay):
                    return
                self._launch(name)

    def stop(self) -> None:
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        for name in STOP_ORDER:
            child = self.children.pop(name, None)
            if child is not None:
                code = terminate(child, timeout=30)
                log.info("%s stopped (code %s)", name, code)
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        for handle in self._logs:
            handle.close()
        self._logs.clear()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
