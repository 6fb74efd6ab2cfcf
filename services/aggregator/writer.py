"""Writes the aggregator's results to ClickHouse: raw rows, absolute totals, watermarks.

Every write is idempotent (ReplacingMergeTree keyed by identity, versioned by source
offset), so a retry or a replay changes nothing. A lock serialises the one client:
the chdb engine is shared by the Faust loop and the invoice-store thread.

Raw rows, one per measurement, and total rows, one per series a batch changed, go in
as Arrow tables: clickhouse-connect's Native encoder turns each value into bytes in
Python, which held the GIL for about 2.2 µs a row (bench/hot_path_parts.py), while
pyarrow's converters are C++. Watermarks (a row per partition) and invoices keep the
plain row insert.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Context, Decimal
from typing import Any, TypeVar

import pyarrow as pa
from clickhouse_connect.driver.client import Client

from services.aggregator.metrics import FLUSH, ROWS, STORE_ERRORS
from services.aggregator.processing import RAW_COLUMNS
from services.aggregator.state_log import micros

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


# RAW_COLUMNS' types, as deploy/clickhouse/002_measurements.sql declares them.
_VALUE = pa.decimal128(38, 12)
_RAW_TYPES = {
    "customer_name": pa.string(), "meter_name": pa.string(), "id": pa.string(), "series": pa.string(),
    "value": _VALUE, "string_value": pa.string(), "event_time": pa.timestamp("us", tz="UTC"),
    "labels": pa.map_(pa.string(), pa.string()), "reset_total": pa.bool_(), "topic": pa.string(),
    "partition": pa.uint32(), "offset": pa.uint64(), "position": pa.uint64(),
}
_RAW_SCHEMA = pa.schema([(name, _RAW_TYPES[name]) for name in RAW_COLUMNS])
# TOTAL_COLUMNS' types, as deploy/clickhouse/003_period_totals.sql declares them and
# 006_wide_totals.sql widens the value: a period's sum of the largest accepted values.
_TOTAL_VALUE = pa.decimal256(76, 12)
_TOTAL_TYPES = {
    "customer_name": pa.string(), "meter_name": pa.string(), "series": pa.string(),
    "period_start": pa.timestamp("us", tz="UTC"), "period_end": pa.timestamp("us", tz="UTC"), "value": _TOTAL_VALUE,
    "events": pa.uint64(), "version": pa.uint64(),
}
_TOTAL_SCHEMA = pa.schema([(name, _TOTAL_TYPES[name]) for name in TOTAL_COLUMNS])
# Every value as its exact multiple of 10**-scale, the row insert's truncation toward zero
# past that (which no valid value needs). The context's precision is the column's: a
# valid raw value has at most 38 significant digits, and one with more is an error here.
_DECIMAL_STEPS = {kind: (Context(prec=kind.precision, rounding=ROUND_DOWN), Decimal(1).scaleb(-kind.scale))
                  for kind in (_VALUE, _TOTAL_VALUE)}


def raw_table(rows: list[list[Any]]) -> pa.Table:
    """Raw rows (RAW_COLUMNS, in that order) as an Arrow table of the measurements table's types."""
    return _arrow_table(rows, "raw rows", RAW_COLUMNS, _RAW_TYPES, _RAW_SCHEMA)


def totals_table(rows: list[list[Any]]) -> pa.Table:
    """Total rows (TOTAL_COLUMNS, in that order) as an Arrow table of period_totals' types."""
    return _arrow_table(rows, "total rows", TOTAL_COLUMNS, _TOTAL_TYPES, _TOTAL_SCHEMA)


def _arrow_table(rows: list[list[Any]], what: str, columns: list[str], types: dict[str, pa.DataType],
                 schema: pa.Schema) -> pa.Table:
    widths = set(map(len, rows))
    if widths != {len(columns)}:
        raise ValueError(f"{what} must hold the {len(columns)} columns {columns}, found widths {sorted(widths)}")
    arrays = []
    for index, name in enumerate(columns):
        column = [row[index] for row in rows]  # one comprehension a column: the cheapest transpose measured
        kind = types[name]
        if isinstance(kind, pa.Decimal128Type | pa.Decimal256Type):
            arrays.append(_decimals(column, kind))
        elif isinstance(kind, pa.TimestampType):
            arrays.append(_timestamps(column, kind))
        else:
            arrays.append(pa.array(column, kind))
    return pa.Table.from_arrays(arrays, schema=schema)


def _decimals(values: list[Any], kind: pa.Decimal128Type | pa.Decimal256Type) -> pa.Array:
    """Decimal(P, 12) values, exact.

    Quantized first: pyarrow converts a Decimal through its text, refuses exact values
    spelled with more than 38 digits (1.000...0, which the model accepts) and crashes the
    process on a large exponent (0E-999999999, pyarrow 26). Here each distinct value is
    quantized once and becomes its whole number of 10**-scale (usage repeats its values:
    1, 3, 12.5), and the array is built from those integers: a third of the time pyarrow
    took to read Decimals (bench/hot_path_parts.py).
    """
    context, quantum = _DECIMAL_STEPS[kind]
    quantize = context.quantize
    scale = kind.scale
    known: dict[Any, int] = {}
    units = []
    for value in values:
        unit = known.get(value)
        if unit is None:
            # Not a Decimal: read from its text, as the row insert did.
            exact = quantize(value if type(value) is Decimal else Decimal(str(value)), quantum)
            unit = known[value] = int(exact.scaleb(scale, context))
        units.append(unit)
    whole_kind = (pa.decimal128 if isinstance(kind, pa.Decimal128Type) else pa.decimal256)(kind.precision, 0)
    if units and min(units) >= -(2**63) and max(units) < 2**63:
        whole = pa.array(units, pa.int64()).cast(whole_kind)  # the usual case: C++ all the way
    else:
        whole = pa.array(units, whole_kind)
    # The same unscaled integers, read with the column's scale.
    return pa.Array.from_buffers(kind, len(whole), whole.buffers())


def _timestamps(values: list[datetime], kind: pa.TimestampType) -> pa.Array:
    """Instants as µs since the epoch, each distinct one computed once (a batch's items
    mostly share a handful): pyarrow took 0.6 µs to read each aware datetime itself. A
    naive one is read as UTC, as pyarrow reads it."""
    known: dict[datetime, int] = {}
    column = []
    for value in values:
        micro = known.get(value)
        if micro is None:
            micro = known[value] = micros(value if value.tzinfo is not None else value.replace(tzinfo=UTC))
        column.append(micro)
    return pa.array(column, pa.int64()).cast(kind)


@dataclass(frozen=True)
class StoreBatch:
    """One batch's rows for the store, the raw and total rows already Arrow tables."""

    raw: pa.Table | None
    totals: pa.Table | None
    watermarks: list[list[Any]]

    @classmethod
    def of(cls, raw: list[list[Any]], totals: list[list[Any]], watermarks: list[list[Any]]) -> StoreBatch:
        """Converted on the caller's thread: the conversion reads Python objects, holding
        the GIL, while the engine's insert (in the writer's thread) releases it. So the
        worker's loop can prepare the next batch during the insert without the two
        threads taking turns at the GIL (services/aggregator/batches.py)."""
        return cls(raw_table(raw) if raw else None, totals_table(totals) if totals else None, watermarks)


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
            self._insert_table("measurements", raw_table(rows))

    def write_totals(self, rows: list[list[Any]]) -> None:
        if rows:
            self._insert_table("period_totals", totals_table(rows))

    def _insert_table(self, name: str, table: pa.Table) -> None:
        # A value the conversion refuses fails before any attempt: it would fail every one.
        self._retrying(name, table.num_rows, lambda: self._client.insert_arrow(name, table))

    def write_watermarks(self, rows: list[list[Any]]) -> None:
        if rows:
            self._retrying("watermarks", len(rows), lambda: self._insert("watermarks", rows, WATERMARK_COLUMNS))

    def write_batch(self, batch: StoreBatch) -> None:
        """One batch's rows, raw rows first (blocking: callers run it in a thread)."""
        if batch.raw is not None:
            self._insert_table("measurements", batch.raw)
        if batch.totals is not None:
            self._insert_table("period_totals", batch.totals)
        self.write_watermarks(batch.watermarks)

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

