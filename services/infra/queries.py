"""Read queries over the store. Always parameterized: names are data, never SQL.

Each query is registered by name and takes string parameters, so the same function
serves a direct ClickHouse reader and the aggregator's read API (which is how other
processes read the embedded engine that the aggregator owns).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client

from shared.models.json_types import format_utc
from shared.money import decimal_text

MONEY_COLUMNS = {"total", "amount"}
WINDOW_FUNCTIONS = {"hour": "toStartOfHour", "day": "toStartOfDay", "month": "toStartOfMonth"}
AGGREGATES = {
    "SUM": "sum(value)",
    "COUNT": "toDecimal128(count(), 12)",
    "MAX": "max(value)",
    "MIN": "min(value)",
    # Distinct by value, as the aggregator counts them ("5" and "5.0" are one value).
    "UNIQUE_COUNT": "toDecimal128(uniqExact(if(string_value != '', string_value, toString(value))), 12)",
}


class QueryError(ValueError):
    """A parameter is missing or malformed; the message names it."""


def _jsonable(name: str, value: Any) -> Any:
    if isinstance(value, Decimal):
        # Money keeps its cents ("164.00"); quantities drop storage padding ("150000").
        return str(value.quantize(Decimal("0.01"))) if name in MONEY_COLUMNS else decimal_text(value)
    if isinstance(value, datetime):
        return format_utc(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, date):
        # toStartOfMonth() is a Date: the instant it starts, like every other window.
        return format_utc(datetime(value.year, value.month, value.day, tzinfo=UTC))
    return value


def _rows(client: Client, sql: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
    result = client.query(sql, parameters=parameters)
    return [
        {name: _jsonable(name, value) for name, value in zip(result.column_names, row, strict=True)}
        for row in result.result_rows
    ]


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise QueryError(f"{name}: is required")
    return value


def _instant(params: Mapping[str, str], name: str) -> datetime:
    text = _required(params, name)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise QueryError(f"{name}: is not an RFC 3339 date-time") from error
    if value.tzinfo is None:
        raise QueryError(f"{name}: must carry a timezone")
    return value.astimezone(UTC)


def period_totals(client: Client, params: Mapping[str, str]) -> list[dict[str, Any]]:
    return _rows(
        client,
        "SELECT customer_name, meter_name, series, period_start, period_end, value, events"
        " FROM period_totals FINAL WHERE customer_name = {customer:String}"
        " ORDER BY meter_name, period_start, series",
        {"customer": _required(params, "customer_name")},
    )


def invoices(client: Client, params: Mapping[str, str]) -> list[dict[str, Any]]:
    return _rows(
        client,
        "SELECT invoice_id, revision, kind, customer_name, price_plan_name, period_start, period_end,"
        " currency, total, issued_at, body FROM invoices FINAL WHERE customer_name = {customer:String}"
        " ORDER BY period_start, period_end, revision",
        {"customer": _required(params, "customer_name")},
    )


def invoice(client: Client, params: Mapping[str, str]) -> list[dict[str, Any]]:
    return _rows(
        client,
        "SELECT invoice_id, revision, kind, customer_name, price_plan_name, period_start, period_end,"
        " currency, total, issued_at, body FROM invoices FINAL WHERE invoice_id = {id:String}",
        {"id": _required(params, "invoice_id")},
    )


def measurement_count(client: Client, params: Mapping[str, str]) -> dict[str, int]:
    result = client.query(
        "SELECT count() FROM measurements FINAL WHERE customer_name = {customer:String}",
        parameters={"customer": _required(params, "customer_name")},
    )
    return {"count": int(result.result_rows[0][0])}


def windowed_usage(client: Client, params: Mapping[str, str]) -> list[dict[str, Any]]:
    """Order-independent meters: the aggregation per calendar window and series, in SQL."""
    window = _required(params, "window")
    aggregation = _required(params, "aggregation")
    if window not in WINDOW_FUNCTIONS:
        raise QueryError("window: must be one of hour, day, month")
    if aggregation not in AGGREGATES:
        raise QueryError(f"aggregation: must be one of {', '.join(AGGREGATES)}")
    # Both names are checked against fixed tables above; they select SQL, never carry data.
    sql = (
        f"SELECT {WINDOW_FUNCTIONS[window]}(event_time) AS window_start, series, {AGGREGATES[aggregation]} AS value"
        " FROM measurements FINAL"
        " WHERE customer_name = {customer:String} AND meter_name = {meter:String}"
        " AND event_time >= {start:DateTime64(6, 'UTC')} AND event_time < {end:DateTime64(6, 'UTC')}"
        " GROUP BY window_start, series ORDER BY window_start, series"
    )
    return _rows(client, sql, {
        "customer": _required(params, "customer_name"), "meter": _required(params, "meter_name"),
        "start": _instant(params, "start_time"), "end": _instant(params, "end_time"),
    })


def series_points(client: Client, params: Mapping[str, str]) -> list[dict[str, Any]]:
    """Order-dependent meters: every point before `end_time`, for exact recomputation."""
    return _rows(
        client,
        "SELECT series, event_time, value, reset_total FROM measurements FINAL"
        " WHERE customer_name = {customer:String} AND meter_name = {meter:String}"
        " AND event_time < {end:DateTime64(6, 'UTC')}"
        " ORDER BY series, event_time, offset",
        {"customer": _required(params, "customer_name"), "meter": _required(params, "meter_name"),
         "end": _instant(params, "end_time")},
    )


QUERIES: dict[str, Callable[[Client, Mapping[str, str]], Any]] = {
    "totals": period_totals,
    "invoices": invoices,
    "invoice": invoice,
    "measurement_count": measurement_count,
    "usage": windowed_usage,
    "points": series_points,
}
