"""The ingest HTTP API (FastAPI): measurements in, health and metrics out.

A batch is judged as a whole: any invalid measurement fails the request with an error
per failing index and nothing is produced. A 202 is sent only after the broker
acknowledged every record (acks=all), so an accepted measurement is never lost.
"""

from __future__ import annotations

import hmac
import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, Protocol

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.infra import topics
from services.infra.store_reader import StoreReader
from services.ingest.catalog_routes import CatalogWriter, catalog_router
from services.ingest.metrics import DELIVERY, EVENTS, QUEUE, REJECTIONS, REQUESTS, field_label
from services.ingest.publisher import RecordTooLarge, Unavailable
from services.ingest.read_routes import read_router
from services.ingest.validation import (
    BodyError,
    FieldError,
    judge,
    largest_field,
    oversized,
    parse_body,
    parse_measurement,
)
from services.settings import Settings
from shared.catalog import Catalog
from shared.models import Measurement
from shared.models.measurement import measurement_json
from shared.resolution import Fact, Limits, SubscriptionIndex

log = logging.getLogger("metering.ingest")


OPEN_PATHS = {"/healthz", "/readyz", "/metrics"}
RETRY_AFTER_SECONDS = "5"


class CatalogSource(Protocol):
    """What the API needs of a catalog view (CatalogView in production)."""

    catalog: Catalog

    @property
    def ready(self) -> bool: ...

    def sync(self, timeout: float = 10.0) -> bool: ...


class MeasurementSink(Protocol):
    """What the API needs of a producer (Publisher in production)."""

    async def publish(self, topic: str, records: list[tuple[bytes, bytes]]) -> None: ...

    def queue_depth(self) -> int: ...

    def broker_reachable(self, timeout: float = 2.0) -> bool: ...


def create_app(
    settings: Settings,
    view: CatalogSource,
    publisher: MeasurementSink,
    peers: list[str] | None = None,
    reader: StoreReader | None = None,
    writer: CatalogWriter | None = None,
) -> FastAPI:
    app = FastAPI(title="metering ingest", version="0.1.0")
    topic = topics.name(settings, topics.MEASUREMENTS)
    limits = Limits(
        max_future=timedelta(seconds=settings.max_future_seconds),
        dedup_window=timedelta(days=settings.dedup_window_days),
    )
    api_key = settings.api_key.get_secret_value().encode() if settings.api_key else None
    # A view that counts its catalog changes (CatalogView.version) gets the per-customer
    # subscription index; anything else is asked through Catalog.subscription_at.
    subscription_at = (
        SubscriptionIndex(lambda: view.catalog, lambda: int(getattr(view, "version")))
        if isinstance(getattr(view, "version", None), int) else None
    )

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if api_key is not None and request.url.path not in OPEN_PATHS:
            header = request.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), api_key):
                return JSONResponse(
                    {"error": "unauthorized", "reason": "a valid 'Authorization: Bearer <key>' header is required"},
                    status_code=401, headers={"WWW-Authenticate": "Bearer"},
                )
        return await call_next(request)

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > settings.max_body_bytes:
            raise BodyTooLarge()
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > settings.max_body_bytes:
                raise BodyTooLarge()
            chunks.append(chunk)
        return b"".join(chunks)

    def reject(route: str, status: int, error: str, errors: list[FieldError], count: int, single: bool) -> Response:
        EVENTS.labels("rejected").inc(count)
        for problem in errors:
            REJECTIONS.labels(field_label(problem.field)).inc()
        if single:
            errors = [FieldError(None, e.field, e.reason) for e in errors]
        return _respond(route, status, {"error": error, "errors": [e.as_json() for e in errors]})

    async def read_json(request: Request, route: str) -> Any:
        """The body as JSON, or the 413/400 response that refuses it."""
        try:
            return parse_body(await read_body(request))
        except BodyTooLarge:
            reason = f"at most {settings.max_body_bytes} bytes"
            return _respond(route, 413, {"error": "body too large", "errors": [{"field": "body", "reason": reason}],
                                         "limit_bytes": settings.max_body_bytes})
        except BodyError as error:
            return _respond(route, 400, {"error": "invalid body", "errors": [{"field": "body", "reason": str(error)}]})

    async def accept(raw_items: list[Any], route: str, single: bool) -> Response:
        received_at = datetime.now(timezone.utc)
        parsed: list[Measurement] = []
        errors: list[FieldError] = []
        for index, raw in enumerate(raw_items):
            measurement, problems = parse_measurement(raw, None if single else index)
            errors.extend(problems)
            if measurement is not None:
                parsed.append(measurement)
        if not errors:
            facts, errors = judge(parsed, view.catalog, received_at, limits, subscription_at=subscription_at)
            if errors and any(e.field in ("customer_name", "meter_name", "event_name") for e in errors):
                view.sync(5.0)  # a catalog change may be in flight; judge again once
                facts, errors = judge(parsed, view.catalog, received_at, limits, subscription_at=subscription_at)
        if errors:
            return reject(route, 400, "invalid measurements", errors, len(raw_items), single)
        records = [_record(m, f, received_at) for m, f in zip(parsed, facts)]
        # Judged whole before the first record is produced: the broker would refuse an
        # oversized record only after the ones before it were on their way.
        too_large = oversized(records, parsed, settings.max_record_bytes)
        if too_large:
            return reject(route, 413, "record too large", too_large, len(raw_items), single)
        try:
            with DELIVERY.time():
                await publisher.publish(topic, records)
        except RecordTooLarge as error:  # the publisher's own limit is lower than ours
            problem = FieldError(error.index, largest_field(parsed[error.index]), str(error))
            return reject(route, 413, "record too large", [problem], len(raw_items), single)
        except Unavailable as error:
            log.warning("broker unavailable: %s", error)
            EVENTS.labels("unavailable").inc(len(records))
            return _respond(
                route, 503, {"error": "unavailable", "reason": "the event broker did not acknowledge; retry"},
                {"Retry-After": RETRY_AFTER_SECONDS},
            )
        finally:
            QUEUE.set(publisher.queue_depth())
        EVENTS.labels("accepted").inc(len(records))
        return _respond(route, 202, {"accepted": len(records)})

    measurement_schema = Measurement.model_json_schema(mode="validation")

    def body_doc(schema: dict[str, Any]) -> dict[str, Any]:
        return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}

    batch_doc = body_doc({"type": "array", "items": measurement_schema, "maxItems": settings.batch_limit})

    @app.post("/measurements/batch", status_code=202, openapi_extra=batch_doc, tags=["measurements"])
    async def post_batch(request: Request) -> Response:
        body = await read_json(request, "batch")
        if isinstance(body, Response):
            return body
        if not isinstance(body, list):
            return _respond("batch", 400, {"error": "invalid body", "errors": [{"field": "body", "reason": "must be a JSON array of measurements"}]})
        if len(body) > settings.batch_limit:
            return _respond("batch", 413, {"error": "batch too large", "errors": [{"field": "body", "reason": f"at most {settings.batch_limit} measurements per batch"}]})
        return await accept(body, "batch", single=False)

    @app.post("/measurements", status_code=202, openapi_extra=body_doc(measurement_schema), tags=["measurements"])
    async def post_one(request: Request) -> Response:
        body = await read_json(request, "one")
        if isinstance(body, Response):
            return body
        return await accept([body], "one", single=True)

    # Catalog routes first: they match on the raw path, so `/customers/a%2Fusage` is the
    # customer "a/usage", not the usage of "a" (read routes match the decoded path).
    if writer is not None:
        app.include_router(catalog_router(settings, view, writer))
    if reader is not None:
        app.include_router(read_router(lambda: view.catalog, reader))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz() -> Response:
        checks = {"broker": publisher.broker_reachable(), "catalog": view.ready}
        for url in peers or []:
            checks[url] = await _peer_ready(url)
        status = 200 if all(checks.values()) else 503
        return JSONResponse({"ready": status == 200, "checks": checks}, status_code=status)

    @app.get("/metrics")
    async def metrics() -> Response:
        QUEUE.set(publisher.queue_depth())
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


class BodyTooLarge(Exception):
    pass


def _record(measurement: Measurement, facts: list[Fact], received_at: datetime) -> tuple[bytes, bytes]:
    # Normalised on the way in: the resolved customer and the effective time are
    # written into the record, so every later reader sees the same facts.
    customer = facts[0].customer_name
    at = measurement.time or received_at
    try:
        return customer.encode(), measurement_json(measurement, customer, at)
    except (ValueError, OverflowError):  # e.g. a lone surrogate: let pydantic say what it says
        normalised = measurement.model_copy(update={"customer_name": customer, "time": at})
        return customer.encode(), normalised.model_dump_json(exclude_none=True).encode()


def _respond(route: str, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    REQUESTS.labels(route, str(status)).inc()
    return JSONResponse(body, status_code=status, headers=headers)


async def _peer_ready(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False
