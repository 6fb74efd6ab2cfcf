"""Several ingest processes serving one port (METERING_INGEST_PROCESSES > 1).

This is uvicorn's worker supervisor (`uvicorn.supervisors.Multiprocess`; why not
SO_REUSEPORT: docs/decisions.md). This parent process binds the port once and starts the
workers by spawning fresh interpreters; each builds its own producer and catalog view
(main.worker_app) and takes connections from the shared socket once its view has loaded.
The parent

- restarts a worker that died or stopped answering its pings (deadlines generous enough
  for a loaded host: worker_liveness.py); the others keep serving the port meanwhile, and
  connections wait in its backlog rather than being refused;
- on SIGTERM or SIGINT, has every worker drain (requests in flight get their delivery
  reports, then the producer is flushed; draining_server.py) and exits 0 once all have;
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
import pickle
import shutil
import time
from pathlib import Path
from socket import socket

import uvicorn
from prometheus_client.multiprocess import mark_process_dead
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from services.ingest.draining_server import DrainingServer
from services.ingest.group_metrics import METRICS_VARIABLE
from services.ingest.worker_liveness import STARTUP_SECONDS, UNRESPONSIVE_SECONDS, Liveness
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


class WorkerProcess(Process):
    """One worker of the group; it serves with DrainingServer, so it stops when told to."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = DrainingServer(config=self.config)
        return self._server


class WorkerGroup(Multiprocess):
    """uvicorn's supervisor (signals, stopping, waiting for the workers), with workers of our
    own, liveness judged by worker_liveness.py, and Prometheus's files told of dead workers."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket], metrics: Path,
                 startup: float = STARTUP_SECONDS, unresponsive: float = UNRESPONSIVE_SECONDS) -> None:
        super().__init__(config, sockets)
        self._metrics = metrics
        self._startup, self._answer_within = startup, unresponsive
        self._liveness: dict[Process, Liveness] = {}
        self.failed_to_start = False

    def init_processes(self) -> None:
        self.processes = [self._started_worker() for _ in range(self.processes_num)]

    def _started_worker(self) -> WorkerProcess:
        worker = WorkerProcess(self.config, self.sockets)
        worker.start()
        self._liveness[worker] = Liveness(startup=self._startup, unresponsive=self._answer_within)
        return worker

    def keep_subprocess_alive(self) -> None:
        # Called every half second, after the signals were handled. A signal still queued
        # may be the SIGTERM that also made a worker exit: replace nothing before it is read.
        if self.should_exit.is_set() or self.signal_queue:
            return
        for index, worker in enumerate(self.processes):
            if worker.process.is_alive() and not self._unresponsive(worker):
                continue
            worker.kill()  # a no-op for a worker that exited
            worker.join()
            del self._liveness[worker]
            if worker.exitcode == STARTUP_FAILURE:
                # Its app could not start (no broker, say): every replacement would fail the
                # same way, so the group stops and its own supervisor restarts it with a backoff.
                log.error("ingest process %d failed while starting; stopping the group", worker.pid)
                self.failed_to_start = True
                self.should_exit.set()
                return
            log.error("ingest process %d exited with code %s; started another", worker.pid, worker.exitcode)
            mark_process_dead(worker.pid, str(self._metrics))  # type: ignore[no-untyped-call]
            self.processes[index] = self._started_worker()

    def _unresponsive(self, worker: Process) -> bool:
        """Collects the worker's answer to its last ping, sends the next, and says whether
        it is past its deadline (worker_liveness.py)."""
        liveness = self._liveness[worker]
        try:
            while worker.parent_conn.poll():
                worker.parent_conn.recv()
                liveness.answered()
            if liveness.ping_due:
                worker.parent_conn.send(b"ping")
                liveness.pinged(time.monotonic())
        except (OSError, EOFError, pickle.UnpicklingError):
            pass  # its end of the pipe is gone: it exits, or it goes overdue
        waited = liveness.overdue(time.monotonic())
        if waited is not None:
            log.error("ingest process %d answered no ping for %.0f s; killing it", worker.pid, waited)
        return waited is not None

    # uvicorn would start workers of its own class for these: resizing or rolling the group
    # means changing METERING_INGEST_PROCESSES and restarting it, as for one process.
    def handle_hup(self) -> None:
        log.warning("ingest group: SIGHUP ignored; restart the group to restart its processes")

    def handle_ttin(self) -> None:
        log.warning("ingest group: SIGTTIN ignored; set METERING_INGEST_PROCESSES and restart it")

    def handle_ttou(self) -> None:
        log.warning("ingest group: SIGTTOU ignored; set METERING_INGEST_PROCESSES and restart it")
