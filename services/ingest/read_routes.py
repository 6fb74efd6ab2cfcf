"""Reading usage and invoices over HTTP, from the store (directly or via the aggregator)."""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ParamSpec

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from services.infra.queries import QueryError
from services.infra.store_reader import StoreReader, StoreUnavailable
from services.infra.web import error_response, problem
from services.ingest.routing import RawPathRoute
from shared.catalog import Catalog
from shared.entitlements import entitlements
from shared.models import Meter, PricePlan, Subscription
from shared.models.json_types import format_utc
from shared.money import decimal_text
from shared.periods import Period, period_at_index, period_containing
from shared.rating import RatingInput, invoice_total, rate
from shared.timeline import Timeline, empty_timeline, insert, is_order_dependent, quantity
from shared.windows import WINDOWS, next_window, windows

MAX_WINDOWS = 10_000


def _instant(text: str, field: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise BadParameter(field, "is not an RFC 3339 date-time (e.g. 2026-01-01T00:00:00Z)") from error
    if value.tzinfo is None:
        raise BadParameter(field, "must carry a timezone (e.g. a trailing Z)")
    try:
        return value.astimezone(UTC)
    except OverflowError as error:
        # 0001-01-01T00:00:00+01:00 is valid RFC 3339 but falls before year 1 in UTC.
        raise BadParameter(field, "is outside the supported range (years 0001 to 9999 in UTC)") from error


def _windows(start: datetime, end: datetime, window: str) -> list[tuple[datetime, datetime]]:
    try:
        return windows(start, end, window, MAX_WINDOWS)
    except ValueError as error:
        raise BadParameter("window", str(error)) from error
    except OverflowError as error:
        # The window holding end_time would end after 9999-12-31 (e.g. a day or a month
        # window ending in 10000): datetime has no such instant.
        raise BadParameter("end_time", f"its {window} window would end after year 9999") from error


def _usage_row(row: dict[str, Any], window: str) -> dict[str, Any]:
    """A stored window's row with its start and end in RFC 3339 UTC.

    The store may name a month by its first day ("2026-11-01": ClickHouse's
    toStartOfMonth is a Date, not a DateTime), so the start is read in any ISO spelling
    and the end is computed from it, never looked up by its spelling.
    """
    start = datetime.fromisoformat(str(row["window_start"]).replace("Z", "+00:00"))
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    return {"window_start": format_utc(start), "window_end": format_utc(next_window(start, window)),
            "series": row["series"], "value": row["value"]}


class Refused(Exception):
    """A read answered with an error naming the field at fault."""

    status = 404

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason

    def response(self) -> Response:
        error = "invalid request" if self.status == 400 else self.reason
        return error_response(self.status, error, errors=[problem(self.field, self.reason)])


class BadParameter(Refused):
    status = 400


P = ParamSpec("P")


def _answered(handler: Callable[P, Awaitable[Response]]) -> Callable[P, Awaitable[Response]]:
    """The handler's answer, or the error that refused it (a store that cannot answer: 503)."""

    @functools.wraps(handler)
    async def answered(*args: P.args, **kwargs: P.kwargs) -> Response:
        try:
            return await handler(*args, **kwargs)
        except Refused as refused:
            return refused.response()
        except StoreUnavailable as error:
            return error_response(503, "store unavailable", reason=str(error))

    return answered


def read_router(catalog: Callable[[], Catalog], reader: StoreReader) -> APIRouter:
    routes = ReadRoutes(catalog, reader)
    router = APIRouter(route_class=RawPathRoute)
    router.add_api_route("/customers/{name}/usage", routes.usage, methods=["GET"], tags=["usage"])
    router.add_api_route("/invoices", routes.list_invoices, methods=["GET"], tags=["invoices"])
    router.add_api_route("/invoices/{invoice_id}", routes.get_invoice, methods=["GET"], tags=["invoices"])
    router.add_api_route("/customers/{name}/invoice_preview", routes.invoice_preview, methods=["GET"],
                         tags=["invoices"])
    router.add_api_route("/customers/{name}/entitlements", routes.customer_entitlements, methods=["GET"],
                         tags=["entitlements"])
    return router


class ReadRoutes:
    def __init__(self, catalog: Callable[[], Catalog], reader: StoreReader) -> None:
        self._catalog = catalog
        self._reader = reader

    @_answered
    async def usage(
        self,
        name: str,
        meter_name: str = Query(..., description="the meter to read"),
        start_time: str = Query(..., description="RFC 3339, inclusive"),
        end_time: str = Query(..., description="RFC 3339, exclusive"),
        window: str = Query("day", description="hour, day or month (UTC calendar windows)"),
    ) -> Response:
        """Usage per window and primary-label series, computed as the aggregator does."""
        known = self._catalog()
        if name not in known.customers:
            raise Refused("name", f"unknown customer {name!r}")
        meter = known.meters.get(meter_name)
        if meter is None:
            raise Refused("meter_name", f"unknown meter {meter_name!r}")
        start, end = _instant(start_time, "start_time"), _instant(end_time, "end_time")
        if end <= start:
            raise BadParameter("end_time", "must be after start_time")
        if window not in WINDOWS:
            raise BadParameter("window", "must be one of hour, day, month")
        spans = _windows(start, end, window)
        params = {"customer_name": name, "meter_name": meter_name,
                  "start_time": format_utc(start), "end_time": format_utc(end), "window": window}
        try:
            if is_order_dependent(meter):
                data = _from_points(meter, await self._reader.read("points", params), spans, start, end)
            else:
                rows = await self._reader.read("usage", {**params, "aggregation": meter.aggregation})
                data = [_usage_row(row, window) for row in rows]
        except QueryError as error:
            raise BadParameter("query", str(error)) from error
        return JSONResponse({"customer_name": name, "meter_name": meter_name, "window": window,
                             "start_time": format_utc(start), "end_time": format_utc(end), "data": data})

    @_answered
    async def list_invoices(self, customer_name: str = Query(...)) -> Response:
        rows = await self._reader.read("invoices", {"customer_name": customer_name})
        return JSONResponse({"invoices": [json.loads(r["body"]) for r in rows]})

    @_answered
    async def get_invoice(self, invoice_id: str) -> Response:
        rows = await self._reader.read("invoice", {"invoice_id": invoice_id})
        if not rows:
            raise Refused("invoice_id", f"no invoice {invoice_id!r}")
        return JSONResponse(json.loads(rows[0]["body"]))

    @_answered
    async def invoice_preview(self, name: str) -> Response:
        """The draft invoice of the open period from live totals (nothing is published).

        Live totals of a period that a trial ends in are not split at the trial's end, so
        its draft bills in-trial usage too; the published invoice does not.
        """
        subscription, plan, period, usage = await self._open_period_usage(name)
        full = period_at_index(subscription.start_time, plan.period, period.index)
        lines = rate(RatingInput(plan=plan, period=period, full_period_seconds=full.seconds, usage=usage,
                                 meters=self._catalog().meters, subscription=subscription))
        return JSONResponse({
            "draft": True, "customer_name": name, "price_plan_name": plan.name,
            "period_start": format_utc(period.start), "period_end": format_utc(period.end), "currency": "USD",
            "lines": [json.loads(line.model_dump_json(exclude_none=True)) for line in lines],
            "total": str(invoice_total(lines)), "as_of": format_utc(datetime.now(UTC)),
        })

    @_answered
    async def customer_entitlements(self, name: str) -> Response:
        """The plan's features and add-ons, and each limit with this period's usage."""
        subscription, plan, period, usage = await self._open_period_usage(name)
        items = entitlements(plan, subscription, usage)
        return JSONResponse({
            "customer_name": name, "price_plan_name": plan.name,
            "period_start": format_utc(period.start), "period_end": format_utc(period.end),
            "entitlements": [
                {"kind": e.kind, "feature": e.feature, "display_name": e.display_name,
                 **({"quantity": decimal_text(e.quantity)} if e.quantity is not None else {}),
                 **({"limit": decimal_text(e.limit)} if e.limit is not None else {}),
                 **({"usage": decimal_text(e.usage)} if e.usage is not None else {}),
                 **({"exceeded": e.exceeded} if e.kind == "limit" else {})}
                for e in items
            ],
        })

    async def _open_period_usage(self, name: str) -> tuple[Subscription, PricePlan, Period, dict[str, Decimal]]:
        """(subscription, plan, period, usage per meter) of the customer's open period."""
        known = self._catalog()
        if name not in known.customers:
            raise Refused("name", f"unknown customer {name!r}")
        now = datetime.now(UTC)
        subscription = known.subscription_at(name, now)
        plan = known.price_plans.get(subscription.price_plan_name) if subscription else None
        if subscription is None or plan is None:
            raise Refused("name", f"customer {name!r} has no subscription in force now")
        period = period_containing(subscription.start_time, plan.period, now, subscription.end_time)
        rows = await self._reader.read("totals", {"customer_name": name})
        usage: dict[str, Decimal] = {}
        for row in rows:
            if row["period_start"] == format_utc(period.start):
                usage[row["meter_name"]] = usage.get(row["meter_name"], Decimal(0)) + Decimal(row["value"])
        return subscription, plan, period, usage


def _from_points(
    meter: Meter, points: list[dict[str, Any]], spans: list[tuple[datetime, datetime]], start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Gauges and running totals: rebuild each series' timeline and use the aggregator's math."""
    timelines: dict[str, Timeline] = {}
    for offset, point in enumerate(points):
        timeline = timelines.setdefault(point["series"], empty_timeline())
        at = datetime.fromisoformat(point["event_time"].replace("Z", "+00:00"))
        insert(timeline, at, Decimal(point["value"]), bool(point["reset_total"]), offset)
    data = []
    for window_start, window_end in spans:
        lower, upper = max(window_start, start), min(window_end, end)
        for series, timeline in sorted(timelines.items()):
            value = quantity(meter, timeline, lower, upper)
            if value is not None:
                data.append({"window_start": format_utc(window_start), "window_end": format_utc(window_end),
                             "series": series, "value": decimal_text(value)})
    return data
