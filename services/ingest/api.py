"""The ingest HTTP API (FastAPI): measurements and the catalog in, usage and invoices
out, health and metrics. This module composes the routes; each group has its module.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from services.infra.store_reader import StoreReader
from services.infra.web import authorized, error_response
from services.ingest.catalog_access import CatalogWriter
from services.ingest.catalog_routes import catalog_router
from services.ingest.group_metrics import exposition
from services.ingest.measurement_routes import CatalogSource, MeasurementRoutes, MeasurementSink
from services.ingest.metrics import QUEUE
from services.ingest.read_routes import read_router
from services.settings import Settings

OPEN_PATHS = {"/healthz", "/readyz", "/metrics"}


def create_app(
    settings: Settings,
    view: CatalogSource,
    publisher: MeasurementSink,
    peers: list[str] | None = None,
    reader: StoreReader | None = None,
    writer: CatalogWriter | None = None,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    app = FastAPI(title="metering ingest", version="0.1.0", lifespan=lifespan)
    api_key = settings.http.api_key.get_secret_value().encode() if settings.http.api_key else None
    app.middleware("http")(BearerCheck(api_key))
    MeasurementRoutes(settings, view, publisher).add_to(app)
    # Catalog routes first: they match on the raw path, so `/customers/a%2Fusage` is the
    # customer "a/usage", not the usage of "a" (read routes match the decoded path).
    if writer is not None:
        app.include_router(catalog_router(settings, view, writer))
    if reader is not None:
        app.include_router(read_router(lambda: view.catalog, reader))
    HealthRoutes(view, publisher, peers or []).add_to(app)
    return app


class BearerCheck:
    """Every path but health and metrics needs the API key, when one is set."""

    def __init__(self, api_key: bytes | None) -> None:
        self._api_key = api_key

    async def __call__(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path in OPEN_PATHS or authorized(request.headers.get("authorization"), self._api_key):
            return await call_next(request)
        return error_response(
            401, "unauthorized", reason="a valid 'Authorization: Bearer <key>' header is required",
            headers={"WWW-Authenticate": "Bearer"},
        )


class HealthRoutes:
    """Liveness, readiness (broker, catalog and every peer) and the Prometheus metrics.

    In a process group (process_group.py) a request may land on any process: readiness is
    the answering process's own producer and catalog view (a process is only given
    connections once its view has loaded), the metrics are the whole group's.
    """

    def __init__(self, view: CatalogSource, publisher: MeasurementSink, peers: list[str]) -> None:
        self._view = view
        self._publisher = publisher
        self._peers = peers

    def add_to(self, app: FastAPI) -> None:
        app.add_api_route("/healthz", self.healthz, methods=["GET"])
        app.add_api_route("/readyz", self.readyz, methods=["GET"])
        app.add_api_route("/metrics", self.metrics, methods=["GET"])

    async def healthz(self) -> dict[str, str]:
        return {"status": "alive"}

    async def readyz(self) -> Response:
        # The broker probe blocks (librdkafka's metadata request, up to 2 s when no broker
        # answers): in a thread, so the process's measurements are not held up meanwhile,
        # and beside the peers' probes, so the answer takes the slowest probe, not their sum.
        broker, *peers = await asyncio.gather(
            asyncio.to_thread(self._publisher.broker_reachable), *(_peer_ready(url) for url in self._peers))
        checks = {"broker": broker, "catalog": self._view.ready, **dict(zip(self._peers, peers, strict=True))}
        status = 200 if all(checks.values()) else 503
        # Each process of a group answers for its own producer and view: say which one did.
        return JSONResponse({"ready": status == 200, "checks": checks, "process": os.getpid()}, status_code=status)

    async def metrics(self) -> Response:
        QUEUE.set(self._publisher.queue_depth())
        return Response(exposition(), media_type=CONTENT_TYPE_LATEST)


async def _peer_ready(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False
