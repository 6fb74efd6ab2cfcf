"""Several ingest processes serving one port (METERING_INGEST_PROCESSES > 1).

This is uvicorn's worker supervisor (`uvicorn.supervisors.Multiprocess`; why not
SO_REUSEPORT: docs/decisions.md). This parent process binds the port once and starts the
workers by spawning fresh interpreters; each builds its own producer and catalog view
(main.worker_app) and takes connections from the shared socket once its view has loaded.
The parent

- restarts a worker that died or stopped answering its pings; the others keep serving
  the port meanwhile, and connections wait in its backlog rather than being refused;
- on SIGTERM or SIGINT, has every worker drain (requests in flight get their delivery
  reports, then the producer is flushed) and exits 0 once all have;
- stops the whole group, exiting 3, when a worker fails while starting (no broker, say):
  whoever supervises the group (`metering up`'s stack, Kubernetes) then restarts it with
  a backoff, where a restart here would loop at once.

Metrics: each worker writes its values to files under one directory (prometheus_client's
multiprocess mode); /metrics adds them up (group_metrics.py). The directory is emptied
when the group starts and removed when it ends; a dead worker's gauge is dropped, its
counts stay in the totals.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from socket import socket

import uvicorn
from prometheus_client.multiprocess import mark_process_dead
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from services.ingest.group_metrics import METRICS_VARIABLE
from services.settings import Settings, settings_env

log = logging.getLogger("metering.ingest")

WORKER_APP = "services.ingest.main:worker_app"


def metrics_directory(settings: Settings) -> Path:
    """Where a group keeps its workers' metric files: one directory per address, so two
    groups on one host (on two ports) never add up each other's."""
    return (settings.data_dir / "ingest-metrics" / f"{settings.http.host}-{settings.http.port}").resolve()


def serve(settings: Settings) -> None:
    config = uvicorn.Config(
        WORKER_APP, factory=True, host=settings.http.host, port=settings.http.port,
        workers=settings.http.ingest_processes, lifespan="on", log_level="warning", access_log=False,
    )
    # Bound first: a second group on this address stops here, before it empties the
    # first one's metric files.
    sock = config.bind_socket()
    directory = metrics_directory(settings)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    # The environment the workers are spawned with: the same settings, and the files' place
    # (read when prometheus_client is first imported, so it must be there before).
    os.environ.update(settings_env(settings))
    os.environ[METRICS_VARIABLE] = str(directory)
    group = WorkerGroup(config, [sock], directory)
    try:
        log.info("ingest: %d processes on %s:%d", config.workers, settings.http.host, settings.http.port)
        group.run()
    finally:
        sock.close()
        shutil.rmtree(directory, ignore_errors=True)
    if group.failed_to_start:
        raise SystemExit(STARTUP_FAILURE)


class WorkerGroup(Multiprocess):
    """uvicorn's supervisor, which also tells Prometheus's files about workers that are gone."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket], metrics: Path) -> None:
        super().__init__(config, sockets)
        self._metrics = metrics
        self._known: dict[int, Process] = {}
        self.failed_to_start = False

    def keep_subprocess_alive(self) -> None:
        # Called every half second, after the signals were handled: whatever replaced or
        # removed a worker since the last call, its pid is gone from self.processes now.
        stopping = self.should_exit.is_set()
        super().keep_subprocess_alive()
        if not stopping and self.should_exit.is_set():
            self.failed_to_start = True  # uvicorn stops the group when a worker could not start
        self._forget_gone_workers()

    def _forget_gone_workers(self) -> None:
        current = {process.pid: process for process in self.processes if process.pid is not None}
        for pid, process in self._known.items():
            if pid not in current:
                log.error("ingest process %d exited with code %s%s", pid, process.exitcode,
                          "" if self.should_exit.is_set() else "; started another")
                mark_process_dead(pid, str(self._metrics))  # type: ignore[no-untyped-call]
        self._known = current
