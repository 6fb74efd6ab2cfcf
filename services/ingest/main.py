"""Composition root of the ingest service."""

from __future__ import annotations

import signal

import uvicorn

from services.infra.catalog_view import CatalogView
from services.infra.store_reader import reader_for
from services.ingest.api import create_app
from services.ingest.catalog_access import KafkaCatalogWriter
from services.ingest.publisher import Publisher
from services.settings import Settings


def run(settings: Settings, bootstrap: str) -> None:
    view = CatalogView(settings, bootstrap).start()
    publisher = Publisher(
        bootstrap, max_record_bytes=settings.limits.max_record_bytes, partitions=settings.kafka.partitions
    )
    writer = KafkaCatalogWriter(settings, bootstrap)
    app = create_app(settings, view, publisher, settings.http.ready_peers, reader=reader_for(settings), writer=writer)
    # uvicorn handles SIGINT/SIGTERM: it stops accepting, finishes in-flight requests
    # (each waits for its delivery reports), then re-raises the signal against the
    # handlers it found. Ours ignore it, so the cleanup below runs and we exit 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    try:
        uvicorn.run(app, host=settings.http.host, port=settings.http.port, log_level="warning", access_log=False)
    finally:
        publisher.close()
        view.stop()
