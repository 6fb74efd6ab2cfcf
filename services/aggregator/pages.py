"""The aggregator's web pages: health, readiness, store reads, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.aggregator.writer import StoreWriter
from services.infra import queries
from services.infra.web import authorized, error_body


def add_pages(
    app: faust.App, writer: StoreWriter, api_key: bytes | None, checks: Callable[[], dict[str, bool]],
) -> None:
    @app.page("/healthz")
    async def healthz(web: View, request: Request) -> Response:
        return web.json({"status": "alive"})

    @app.page("/readyz")
    async def readyz(web: View, request: Request) -> Response:
        results = checks()
        results["store"] = await asyncio.to_thread(writer.ping)
        status = 200 if all(results.values()) else 503
        return web.json({"ready": status == 200, "checks": results}, status=status)

    @app.page("/store/{name}")
    async def store_read(web: View, request: Request, name: str) -> Response:
        """Named read queries over the store this process owns (see infra/queries.py)."""
        if not authorized(request.headers.get("Authorization"), api_key):
            return web.json(error_body("unauthorized"), status=401)
        query = queries.QUERIES.get(name)
        if query is None:
            return web.json(error_body(f"unknown query {name!r}"), status=404)
        params = dict(request.query)
        try:
            result = await asyncio.to_thread(writer.read, lambda client: query(client, params))
        except queries.QueryError as error:
            return web.json(error_body("invalid query", reason=str(error)), status=400)
        return web.json(result)

    @app.page("/metrics")
    async def metrics(web: View, request: Request) -> Response:
        return web.bytes(generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
