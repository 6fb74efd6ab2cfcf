"""Composition root of the ingest service: the app of one process, run alone (`run`) or
as a worker of a process group (`worker_app`, started by process_group.py)."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE

from services.infra.catalog_view import CatalogView
from services.infra.logs import configure as configure_logs
from services.infra.processes import die_with_parent
from services.infra.store_reader import reader_for
from services.ingest.api import create_app
from services.ingest.catalog_access import KafkaCatalogWriter
from services.ingest.draining_server import DrainingServer
from services.ingest.publisher import Publisher
from services.settings import Settings


def run(settings: Settings, bootstrap: str) -> None:
    """The service as one process (METERING_INGEST_PROCESSES=1)."""
    app = ingest_app(settings, bootstrap)
    # The server handles SIGINT/SIGTERM: it stops accepting, finishes in-flight requests
    # (each waits for its delivery reports), runs the lifespan's cleanup, then re-raises
    # the signal against the handlers it found. Ours ignore it, so we exit 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    server = DrainingServer(uvicorn.Config(app, host=settings.http.host, port=settings.http.port, lifespan="on",
                                           log_level="warning", access_log=False))
    server.run()
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)  # as uvicorn.run exits when the app could not start


def ingest_app(settings: Settings, bootstrap: str) -> FastAPI:
    """The app with its own producer and catalog view, started and stopped by its lifespan.

    The view loads the catalog before the server takes its first connection, and a view
    that cannot (no broker) fails the start-up: uvicorn then exits with its start-up
    failure code, which stops a whole process group rather than restarting in a loop.
    """
    view = CatalogView(settings, bootstrap)
    publisher = Publisher(
        bootstrap, max_record_bytes=settings.limits.max_record_bytes, partitions=settings.kafka.partitions
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            view.start()
            yield
        finally:
            # After the server drained: every request answered had its delivery reports,
            # and what is still queued is flushed before the process ends.
            publisher.close()
            view.stop()

    writer = KafkaCatalogWriter(settings, bootstrap)
    return create_app(settings, view, publisher, settings.http.ready_peers, reader=reader_for(settings),
                      writer=writer, lifespan=lifespan)


def worker_app() -> FastAPI:
    """One process of a group (process_group.py), in a fresh interpreter (spawned, not
    forked: librdkafka's threads do not survive a fork): its own producer, catalog view and
    metric files, from the environment the group passed down."""
    configure_logs()
    parent = multiprocessing.parent_process()
    die_with_parent()  # a SIGKILLed group leaves no worker holding its port
    if parent is None or os.getppid() != parent.pid:
        raise SystemExit("the ingest process group ended before this worker started")
    settings = Settings()
    if settings.kafka.bootstrap_servers is None:
        raise SystemExit("KAFKA_BOOTSTRAP_SERVERS is required to run the ingest service")
    return ingest_app(settings, settings.kafka.bootstrap_servers)
