"""Reading usage and invoices over HTTP, from the store (directly or via the aggregator)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from services.infra.queries import QueryError
from services.infra.store_reader import StoreReader, StoreUnavailable
from services.ingest.routing import RawPathRoute
from shared.catalog import Catalog
from shared.entitlements import entitlements
from shared.periods import period_at_index, period_containing
from shared.rating import RatingInput, invoice_total, rate
from shared.models.json_types import format_utc
from shared.money import decimal_text
from shared.timeline import empty_timeline, insert, is_order_dependent, quantity
from shared.windows import WINDOWS, next_window, windows

MAX_WINDOWS = 10_000


def _error(status: int, field: str, reason: str) -> Response:
    return JSONResponse({"error": reason if status != 400 else "invalid request",
                         "errors": [{"field": field, "reason": reason}]}, status_code=status)


def _instant(text: str, field: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise BadParameter(field, "is not an RFC 3339 date-time (e.g. 2026-01-01T00:00:00Z)") from error
    if value.tzinfo is None:
        raise BadParameter(field, "must carry a timezone (e.g. a trailing Z)")
    try:
        return value.astimezone(timezone.utc)
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
    start = start.replace(tzinfo=timezone.utc) if start.tzinfo is None else start.astimezone(timezone.utc)
    return {"window_start": format_utc(start), "window_end": format_utc(next_window(start, window)),
            "series": row["series"], "value": row["value"]}


class BadParameter(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def read_router(catalog: Callable[[], Catalog], reader: StoreReader) -> APIRouter:
    router = APIRouter(route_class=RawPathRoute)

    @router.get("/customers/{name}/usage", tags=["usage"])
    async def usage(
        name: str,
        meter_name: str = Query(..., description="the meter to read"),
        start_time: str = Query(..., description="RFC 3339, inclusive"),
        end_time: str = Query(..., description="RFC 3339, exclusive"),
        window: str = Query("day", description="hour, day or month (UTC calendar windows)"),
    ) -> Response:
        """Usage per window and primary-label series, computed as the aggregator does."""
        known = catalog()
        if name not in known.customers:
            return _error(404, "name", f"unknown customer {name!r}")
        meter = known.meters.get(meter_name)
        if meter is None:
            return _error(404, "meter_name", f"unknown meter {meter_name!r}")
        try:
            start, end = _instant(start_time, "start_time"), _instant(end_time, "end_time")
            if end <= start:
                raise BadParameter("end_time", "must be after start_time")
            if window not in WINDOWS:
                raise BadParameter("window", "must be one of hour, day, month")
            spans = _windows(start, end, window)
            params = {"customer_name": name, "meter_name": meter_name,
                      "start_time": format_utc(start), "end_time": format_utc(end), "window": window}
            if is_order_dependent(meter):
                points = await reader.read("points", params)
                data = _from_points(meter, points, spans, start, end)
            else:
                rows = await reader.read("usage", {**params, "aggregation": meter.aggregation})
                data = [_usage_row(row, window) for row in rows]
        except BadParameter as error:
            return _error(400, error.field, error.reason)
        except QueryError as error:
            return _error(400, "query", str(error))
        except StoreUnavailable as error:
            return JSONResponse({"error": "store unavailable", "reason": str(error)}, status_code=503,
                                headers={"Retry-After": "5"})
        return JSONResponse({"customer_name": name, "meter_name": meter_name, "window": window,
                             "start_time": format_utc(start), "end_time": format_utc(end), "data": data})

    @router.get("/invoices", tags=["invoices"])
    async def list_invoices(customer_name: str = Query(...)) -> Response:
        try:
            rows = await reader.read("invoices", {"customer_name": customer_name})
        except StoreUnavailable as error:
            return JSONResponse({"error": "store unavailable", "reason": str(error)}, status_code=503,
                                headers={"Retry-After": "5"})
        return JSONResponse({"invoices": [json.loads(r["body"]) for r in rows]})

    @router.get("/invoices/{invoice_id}", tags=["invoices"])
    async def get_invoice(invoice_id: str) -> Response:
        try:
            rows = await reader.read("invoice", {"invoice_id": invoice_id})
        except StoreUnavailable as error:
            return JSONResponse({"error": "store unavailable", "reason": str(error)}, status_code=503,
                                headers={"Retry-After": "5"})
        if not rows:
            return _error(404, "invoice_id", f"no invoice {invoice_id!r}")
        return JSONResponse(json.loads(rows[0]["body"]))

    async def _open_period_usage(name: str) -> tuple[Any, Any, Any, dict[str, Decimal]] | Response:
        """(subscription, plan, period, usage per meter) of the customer's open period."""
        known = catalog()
        if name not in known.customers:
            return _error(404, "name", f"unknown customer {name!r}")
        now = datetime.now(timezone.utc)
        subscription = known.subscription_at(name, now)
        plan = known.price_plans.get(subscription.price_plan_name) if subscription else None
        if subscription is None or plan is None:
            return _error(404, "name", f"customer {name!r} has no subscription in force now")
        period = period_containing(subscription.start_time, plan.period, now, subscription.end_time)
        try:
            rows = await reader.read("totals", {"customer_name": name})
        except StoreUnavailable as error:
            return JSONResponse({"error": "store unavailable", "reason": str(error)}, status_code=503,
                                headers={"Retry-After": "5"})
        usage: dict[str, Decimal] = {}
        for row in rows:
            if row["period_start"] == format_utc(period.start):
                usage[row["meter_name"]] = usage.get(row["meter_name"], Decimal(0)) + Decimal(row["value"])
        return subscription, plan, period, usage

    @router.get("/customers/{name}/invoice_preview", tags=["invoices"])
    async def invoice_preview(name: str) -> Response:
        """The draft invoice of the open period from live totals (nothing is published).

        Live totals of a period that a trial ends in are not split at the trial's end, so
        its draft bills in-trial usage too; the published invoice does not.
        """
        found = await _open_period_usage(name)
        if isinstance(found, Response):
            return found
        subscription, plan, period, usage = found
        full = period_at_index(subscription.start_time, plan.period, period.index)
        lines = rate(RatingInput(plan=plan, period=period, full_period_seconds=full.seconds, usage=usage,
                                 meters=catalog().meters, subscription=subscription))
        return JSONResponse({
            "draft": True, "customer_name": name, "price_plan_name": plan.name,
            "period_start": format_utc(period.start), "period_end": format_utc(period.end), "currency": "USD",
            "lines": [json.loads(line.model_dump_json(exclude_none=True)) for line in lines],
            "total": str(invoice_total(lines)), "as_of": format_utc(datetime.now(timezone.utc)),
        })

    @router.get("/customers/{name}/entitlements", tags=["entitlements"])
    async def customer_entitlements(name: str) -> Response:
        """The plan's features and add-ons, and each limit with this period's usage."""
        found = await _open_period_usage(name)
        if isinstance(found, Response):
            return found
        subscription, plan, period, usage = found
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

    return router


def _from_points(
    meter: Any, points: list[dict[str, Any]], spans: list[tuple[datetime, datetime]], start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Gauges and running totals: rebuild each series' timeline and use the aggregator's math."""
    timelines: dict[str, dict[str, Any]] = {}
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
