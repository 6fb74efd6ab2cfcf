"""Read queries over the store. Always parameterized: names are data, never SQL."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from clickhouse_connect.driver.client import Client

from shared.models.json_types import format_utc
from shared.money import decimal_text


MONEY_COLUMNS = {"total", "amount"}


def _jsonable(name: str, value: Any) -> Any:
    if isinstance(value, Decimal):
        # Money keeps its cents ("164.00"); quantities drop storage padding ("150000").
        return str(value.quantize(Decimal("0.01"))) if name in MONEY_COLUMNS else decimal_text(value)
    if isinstance(value, datetime):
        return format_utc(value if value.tzinfo else value.replace(tzinfo=timezone.utc))
    return value


def _rows(client: Client, sql: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
    result = client.query(sql, parameters=parameters)
    return [
        {name: _jsonable(name, value) for name, value in zip(result.column_names, row)}
        for row in result.result_rows
    ]


def period_totals(client: Client, customer: str) -> list[dict[str, Any]]:
    return _rows(
        client,
        "SELECT customer_name, meter_name, series, period_start, period_end, value, events"
        " FROM period_totals FINAL WHERE customer_name = {customer:String}"
        " ORDER BY meter_name, period_start, series",
        {"customer": customer},
    )


def invoices(client: Client, customer: str) -> list[dict[str, Any]]:
    return _rows(
        client,
        "SELECT invoice_id, revision, kind, period_start, period_end, total, body"
        " FROM invoices FINAL WHERE customer_name = {customer:String}"
        " ORDER BY period_start, revision",
        {"customer": customer},
    )


def measurement_count(client: Client, customer: str) -> int:
    result = client.query(
        "SELECT count() FROM measurements FINAL WHERE customer_name = {customer:String}",
        parameters={"customer": customer},
    )
    return int(result.result_rows[0][0])
