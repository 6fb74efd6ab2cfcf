"""Writes the aggregator's results to ClickHouse: raw rows, absolute totals, watermarks.

Every write is idempotent (ReplacingMergeTree keyed by identity, versioned by source
offset), so a retry or a replay changes nothing. A lock serialises the one client:
the chdb engine is shared by the Faust loop and the invoice-store thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from clickhouse_connect.driver.client import Client

from services.aggregator.metrics import FLUSH, ROWS, STORE_ERRORS
from services.aggregator.processing import RAW_COLUMNS

log = logging.getLogger(__name__)
T = TypeVar("T")

TOTAL_COLUMNS = [
    "customer_name", "meter_name", "series", "period_start", "period_end", "value", "events", "version",
]
WATERMARK_COLUMNS = ["topic", "partition", "max_event_time", "watermark", "version"]
INVOICE_COLUMNS = [
    "invoice_id", "revision", "kind", "customer_name", "price_plan_name", "period_start",
    "period_end", "currency", "total", "issued_at", "body",
]


class StoreWriter:
    def __init__(self, client: Client, attempts: int = 5) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._attempts = attempts
        # Column types per (table, columns), learned from the first insert: later inserts
        # skip the DESCRIBE query clickhouse-connect otherwise runs before every insert.
        self._types: dict[tuple[str, tuple[str, ...]], Any] = {}

    def _insert(self, table: str, rows: list[list[Any]], columns: list[str]) -> None:
        key = (table, tuple(columns))
        types = self._types.get(key)
        if types is None:
            context = self._client.create_insert_context(table, column_names=columns, data=rows)
            self._client.insert(context=context)
            self._types[key] = context.column_types
        else:
            self._client.insert(table, rows, column_names=columns, column_types=types)

    def _retrying(self, table: str, rows: int, action: Callable[[], T]) -> T:
        delay = 0.2
        for attempt in range(1, self._attempts + 1):
            try:
                with self._lock, FLUSH.time():
                    result = action()
                ROWS.labels(table).inc(rows)
                return result
            except Exception:
                STORE_ERRORS.labels(table).inc()
                if attempt == self._attempts:
                    raise
                log.warning("ClickHouse write failed (attempt %d), retrying", attempt, exc_info=True)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    def write_raw(self, rows: list[list[Any]]) -> None:
        if rows:
            self._retrying("measurements", len(rows), lambda: self._insert("measurements", rows, RAW_COLUMNS))

    def write_totals(self, rows: list[list[Any]]) -> None:
        if rows:
            self._retrying("period_totals", len(rows), lambda: self._insert("period_totals", rows, TOTAL_COLUMNS))

    def write_watermarks(self, rows: list[list[Any]]) -> None:
        if rows:
            self._retrying("watermarks", len(rows), lambda: self._insert("watermarks", rows, WATERMARK_COLUMNS))

    def write_batch(self, raw: list[list[Any]], totals: list[list[Any]], watermarks: list[list[Any]]) -> None:
        """One batch's rows, raw rows first (blocking: callers run it in a thread)."""
        self.write_raw(raw)
        self.write_totals(totals)
        self.write_watermarks(watermarks)

    def write_invoices(self, rows: list[list[Any]]) -> None:
        if rows:
            self._retrying("invoices", len(rows), lambda: self._insert("invoices", rows, INVOICE_COLUMNS))

    def read(self, query: Callable[[Client], T]) -> T:
        """Run a read on the store this process owns (the embedded engine has one owner)."""
        with self._lock:
            return query(self._client)

    def ping(self) -> bool:
        try:
            with self._lock:
                self._client.command("SELECT 1")
            return True
        except Exception:  # noqa: BLE001 - a health probe: whatever the engine or HTTP client raises reads as down
            return False

