"""POST /measurements and /measurements/batch: judged whole, answered once delivered.

A batch is judged as a whole: any invalid measurement fails the request with an error
per failing index and nothing is produced. A 202 is sent only after the broker
acknowledged every record (acks=all), so an accepted measurement is never lost.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from services.infra import topics
from services.infra.web import BodyTooLarge, Problem, error_response, problem, read_limited
from services.ingest.fast_path import FastPath
from services.ingest.metrics import DELIVERY, EVENTS, QUEUE, REJECTIONS, REQUESTS, field_label
from services.ingest.openapi import batch_doc, measurement_doc
from services.ingest.publisher import RecordTooLarge, Unavailable
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
from shared.resolution import Fact, Limits

log = logging.getLogger("metering.ingest")


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


class MeasurementRoutes:
    def __init__(self, settings: Settings, view: CatalogSource, publisher: MeasurementSink) -> None:
        self._view = view
        self._publisher = publisher
        self._topic = topics.name(settings, topics.MEASUREMENTS)
        self._max_body_bytes = settings.limits.max_body_bytes
        self._max_record_bytes = settings.limits.max_record_bytes
        self._batch_limit = settings.limits.batch_limit
        self._limits = Limits(
            max_future=timedelta(seconds=settings.event_time.max_future_seconds),
            dedup_window=timedelta(days=settings.event_time.dedup_window_days),
        )
        # Batches it accepts whole skip the models; everything else takes the usual path.
        self._fast_path = FastPath(lambda: view.catalog, self._limits, self._max_record_bytes)

    def add_to(self, app: FastAPI) -> None:
        app.add_api_route("/measurements/batch", self.post_batch, methods=["POST"], status_code=202,
                          openapi_extra=batch_doc(self._batch_limit), tags=["measurements"])
        app.add_api_route("/measurements", self.post_one, methods=["POST"], status_code=202,
                          openapi_extra=measurement_doc(), tags=["measurements"])

    async def post_batch(self, request: Request) -> Response:
        body = await self._read_json(request, "batch")
        if isinstance(body, Response):
            return body
        if not isinstance(body, list):
            return _refuse("batch", 400, "invalid body",
                           [problem("body", "must be a JSON array of measurements")])
        if len(body) > self._batch_limit:
            return _refuse("batch", 413, "batch too large",
                           [problem("body", f"at most {self._batch_limit} measurements per batch")])
        return await self._accept(body, "batch", single=False)

    async def post_one(self, request: Request) -> Response:
        body = await self._read_json(request, "one")
        if isinstance(body, Response):
            return body
        return await self._accept([body], "one", single=True)

    async def _read_json(self, request: Request, route: str) -> Any:
        """The body as JSON, or the 413/400 response that refuses it."""
        try:
            return parse_body(await read_limited(request, self._max_body_bytes))
        except BodyTooLarge as error:
            return _refuse(route, 413, "body too large", [problem("body", str(error))],
                           extra={"limit_bytes": error.limit})
        except BodyError as error:
            return _refuse(route, 400, "invalid body", [problem("body", str(error))])

    async def _accept(self, raw_items: list[Any], route: str, single: bool) -> Response:
        received_at = datetime.now(UTC)
        records = self._fast_path.records(raw_items, received_at)
        if records is None:
            judged = self._judge_usually(raw_items, route, single, received_at)
            if isinstance(judged, Response):
                return judged
            records = judged
        return await self._publish(records, raw_items, route, single)

    def _judge_usually(
        self, raw_items: list[Any], route: str, single: bool, received_at: datetime,
    ) -> list[tuple[bytes, bytes]] | Response:
        """The usual path: every problem of every measurement, worded; or the records."""
        parsed: list[Measurement] = []
        errors: list[FieldError] = []
        for index, raw in enumerate(raw_items):
            measurement, problems = parse_measurement(raw, None if single else index)
            errors.extend(problems)
            if measurement is not None:
                parsed.append(measurement)
        if not errors:
            facts, errors = self._judge(parsed, received_at)
            if errors and any(e.field in ("customer_name", "meter_name", "event_name") for e in errors):
                self._view.sync(5.0)  # a catalog change may be in flight; judge again once
                facts, errors = self._judge(parsed, received_at)
        if errors:
            return _reject(route, 400, "invalid measurements", errors, len(raw_items), single)
        records = [record_of(m, f, received_at) for m, f in zip(parsed, facts, strict=True)]
        # Judged whole before the first record is produced: the broker would refuse an
        # oversized record only after the ones before it were on their way.
        too_large = oversized(records, parsed, self._max_record_bytes)
        if too_large:
            return _reject(route, 413, "record too large", too_large, len(raw_items), single)
        return records

    def _judge(self, parsed: list[Measurement], received_at: datetime) -> tuple[list[list[Fact]], list[FieldError]]:
        return judge(parsed, self._view.catalog, received_at, self._limits)

    async def _publish(
        self, records: list[tuple[bytes, bytes]], raw_items: list[Any], route: str, single: bool,
    ) -> Response:
        count = len(raw_items)
        try:
            with DELIVERY.time():
                await self._publisher.publish(self._topic, records)
        except RecordTooLarge as error:  # the publisher's own limit is lower than ours
            measurement, _ = parse_measurement(raw_items[error.index], error.index)
            assert measurement is not None  # it was judged valid before it was produced
            too_large = FieldError(error.index, largest_field(measurement), str(error))
            return _reject(route, 413, "record too large", [too_large], count, single)
        except Unavailable as error:
            log.warning("broker unavailable: %s", error)
            EVENTS.labels("unavailable").inc(len(records))
            return _refuse(route, 503, "unavailable", reason="the event broker did not acknowledge; retry")
        finally:
            QUEUE.set(self._publisher.queue_depth())
        EVENTS.labels("accepted").inc(len(records))
        REQUESTS.labels(route, "202").inc()
        return JSONResponse({"accepted": len(records)}, status_code=202)


def record_of(measurement: Measurement, facts: list[Fact], received_at: datetime) -> tuple[bytes, bytes]:
    """The Kafka record (key, value) of a judged measurement."""
    # Normalised on the way in: the resolved customer and the effective time are
    # written into the record, so every later reader sees the same facts.
    customer = facts[0].customer_name
    at = measurement.time or received_at
    try:
        return customer.encode(), measurement_json(measurement, customer, at)
    except (ValueError, OverflowError):  # e.g. a lone surrogate: let pydantic say what it says
        normalised = measurement.model_copy(update={"customer_name": customer, "time": at})
        return customer.encode(), normalised.model_dump_json(exclude_none=True).encode()


def _reject(route: str, status: int, error: str, errors: list[FieldError], count: int, single: bool) -> Response:
    EVENTS.labels("rejected").inc(count)
    for field_error in errors:
        REJECTIONS.labels(field_label(field_error.field)).inc()
    if single:
        errors = [FieldError(None, e.field, e.reason) for e in errors]
    return _refuse(route, status, error, [e.as_json() for e in errors])


def _refuse(
    route: str, status: int, error: str, errors: list[Problem] | None = None,
    *, reason: str | None = None, extra: dict[str, Any] | None = None,
) -> Response:
    REQUESTS.labels(route, str(status)).inc()
    return error_response(status, error, reason=reason, errors=errors, extra=extra)
