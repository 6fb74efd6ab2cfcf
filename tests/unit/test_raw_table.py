"""StoreWriter's raw and total rows as Arrow tables: every value as the store's tables hold it.

The store side (the table inserted through chdb reads back as the row insert's) is
tests/integration/test_clickhouse_store.py; these need no engine.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from unittest.mock import MagicMock

import pyarrow as pa
import pytest

from services.aggregator import writer as writer_module
from services.aggregator.processing import RAW_COLUMNS
from services.aggregator.writer import TOTAL_COLUMNS, StoreBatch, StoreWriter, raw_table, totals_table

AT = datetime(2026, 1, 5, 12, 30, 15, 123456, tzinfo=UTC)


def row(value: Any = Decimal(1), at: datetime = AT, labels: dict[str, str] | None = None) -> list[Any]:
    return ["acme", "api_calls", "id-1", "", value, "", at, labels or {}, False, "m", 3, 17, 17 * 2**20 + 4]


@pytest.mark.parametrize("value,stored", [
    (Decimal("99999999999999999999999999.999999999999"), Decimal("99999999999999999999999999.999999999999")),
    (Decimal("-99999999999999999999999999.999999999999"), Decimal("-99999999999999999999999999.999999999999")),
    (Decimal("0.000000000001"), Decimal("0.000000000001")),
    (Decimal("-0.000000000001"), Decimal("-0.000000000001")),
    (Decimal("1." + "0" * 100), Decimal(1)),  # exact, in more than 38 digits: pyarrow itself refuses it
    (Decimal("1.5000000000000000000"), Decimal("1.5")),
    (Decimal("1E+25"), Decimal(10**25)),
    (Decimal("0E-999999999"), Decimal(0)),  # pyarrow itself crashes the process on it
    (Decimal("-0"), Decimal(0)),
    (Decimal(7), Decimal(7)),
    (Decimal("12.5"), Decimal("12.5")),
    (3, Decimal(3)),  # not a Decimal: read from its text, as the row insert did
])
def test_values_are_stored_exactly(value: Any, stored: Decimal) -> None:
    [got] = raw_table([row(value)]).column("value").to_pylist()
    assert got == stored and type(got) is Decimal


def test_more_than_twelve_decimal_places_truncate_as_the_row_insert_did() -> None:
    # Never valid (resolution refuses them); pinned so the two inserts stay one behaviour.
    values = raw_table([row(Decimal("1.0000000000009")), row(Decimal("-1.0000000000009"))]).column("value")
    assert values.to_pylist() == [Decimal("1.000000000000"), Decimal("-1.000000000000")]


@pytest.mark.parametrize("value", [Decimal(10**26), Decimal("NaN"), Decimal("Infinity"), Decimal("1E+999999999")])
def test_a_value_decimal_38_12_cannot_hold_is_an_error_not_a_wrong_number(value: Decimal) -> None:
    # InvalidOperation from the quantize, or pyarrow's ArrowInvalid (a ValueError) for a quiet NaN
    with pytest.raises((InvalidOperation, ValueError)):
        raw_table([row(value)])


@pytest.mark.parametrize("at", [
    AT, AT.replace(microsecond=0), AT.replace(microsecond=999_999), datetime(1970, 1, 1, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), datetime(2299, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    AT.astimezone(timezone(timedelta(hours=5, minutes=30))),  # the same instant, spelled in another zone
])
def test_event_times_are_exact_to_the_microsecond(at: datetime) -> None:
    [got] = raw_table([row(at=at)]).column("event_time").to_pylist()
    assert got == at and got.utcoffset() == timedelta(0)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert raw_table([row(at=at)]).column("event_time").cast("int64").to_pylist() == [(at - epoch) // timedelta(
        microseconds=1)]


def test_every_column_keeps_its_values_and_order() -> None:
    labels = {"zeta": "1", "alpha": "", "ünï 顧客 🚀": "x'); DROP TABLE measurements; --",
              **{f"k{n}": "v" for n in range(29)}}
    rows = [row(labels=labels), ["o'brien", "visitors", "id-2", "region=eu", Decimal(0), "v" * 1024, AT, {}, True,
                                 "measurements", 2**32 - 1, 2**63, 2**64 - 1]]
    table = raw_table(rows)
    assert table.column_names == RAW_COLUMNS
    back = [list(values) for values in zip(*(table.column(name).to_pylist() for name in RAW_COLUMNS), strict=True)]
    back[0][7] = dict(back[0][7])  # Arrow's map reads back as (key, value) pairs, in order
    back[1][7] = dict(back[1][7])
    assert back == rows
    assert list(back[0][7]) == list(labels)


def test_rows_of_another_width_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"raw rows must hold the 13 columns \[.*\], found widths \[12, 13\]"):
        raw_table([row(), row()[:-1]])


def test_a_value_that_cannot_be_converted_fails_the_write_and_a_failed_insert_is_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(writer_module.time, "sleep", lambda seconds: None)
    client = MagicMock()
    writer = StoreWriter(client, attempts=3)
    with pytest.raises(InvalidOperation):
        writer.write_raw([row(Decimal(10**27))])
    assert client.insert_arrow.call_count == 0
    client.insert_arrow.side_effect = [RuntimeError("engine busy"), None]
    writer.write_raw([row()])
    assert client.insert_arrow.call_count == 2
    table_name, table = client.insert_arrow.call_args.args
    assert table_name == "measurements" and table.num_rows == 1


def test_total_rows_keep_their_values_to_the_width_of_the_widened_column() -> None:
    largest_sum = Decimal("99999999999999999999999999.999999999999") * 10**30  # 68 digits (006_wide_totals.sql)
    end = AT + timedelta(days=31)
    rows = [
        ["acme", "api_calls", "", AT, end, largest_sum, 10**15, 2**64 - 1],
        ["o'brien", "storage_gb", "region=eu", AT, end, Decimal("-0.000000000001"), 0, 0],
        ["ünï 顧客", "seats", "", AT, end, Decimal("1." + "0" * 100), 1, 5],
    ]
    table = totals_table(rows)
    assert table.column_names == TOTAL_COLUMNS
    back = [list(values) for values in zip(*(table.column(name).to_pylist() for name in TOTAL_COLUMNS), strict=True)]
    assert back == [rows[0], rows[1], [*rows[2][:5], Decimal(1), 1, 5]]


def test_total_rows_of_another_width_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"total rows must hold the 8 columns"):
        totals_table([["acme", "api_calls", "", AT, AT, Decimal(1), 1]])


def test_a_column_of_small_and_wide_values_keeps_each_exactly() -> None:
    # The small ones alone go through int64 (writer._decimals); one wider value takes the
    # whole column the other way, and neither may change a value.
    wide = Decimal("99999999999999999999999999.999999999999")
    negative = Decimal("-99999999999999999999999999.999999999999")
    for values in ([Decimal(1), Decimal("12.5"), Decimal("-0.75")], [Decimal(1), wide, Decimal("12.50"), negative]):
        stored = raw_table([row(value) for value in values]).column("value").to_pylist()
        assert stored == values


def test_values_seen_again_are_stored_as_the_first_time_whatever_their_spelling() -> None:
    values = [Decimal("12.5"), Decimal("12.50"), Decimal("1.25E+1"), 3, Decimal(3), Decimal("3.000"), Decimal("12.5")]
    stored = raw_table([row(value) for value in values]).column("value").to_pylist()
    assert stored == [Decimal("12.5")] * 3 + [Decimal(3)] * 3 + [Decimal("12.5")]


def test_instants_seen_again_in_other_zones_or_naive_are_read_as_pyarrow_reads_them() -> None:
    naive = AT.replace(tzinfo=None)  # never written by the services; pyarrow reads it as UTC
    elsewhere = AT.astimezone(timezone(timedelta(hours=-3)))
    ats = [AT, elsewhere, naive, AT + timedelta(microseconds=1), AT]
    got = raw_table([row(at=at) for at in ats]).column("event_time")
    assert got.combine_chunks().equals(pa.array(ats, pa.timestamp("us", tz="UTC")))


@pytest.mark.parametrize("value", [
    Decimal("9223372.036854775807"), Decimal("9223372.036854775808"),  # 2**63 - 1 and 2**63 units
    Decimal("-9223372.036854775808"), Decimal("-9223372.036854775809"),  # -2**63 and one below
])
def test_values_at_the_edge_of_64_bits_of_units_are_exact(value: Decimal) -> None:
    assert raw_table([row(value), row(Decimal(1))]).column("value").to_pylist() == [value, Decimal(1)]


def test_a_store_batch_writes_raw_rows_then_totals_then_watermarks_and_skips_what_is_empty() -> None:
    client = MagicMock()
    writer = StoreWriter(client)
    end = AT + timedelta(days=31)
    totals = [["acme", "api_calls", "", AT, end, Decimal(5), 2, 9]]
    marks = [["m", 3, AT, AT, 17]]
    writer.write_batch(StoreBatch.of([row()], totals, marks))
    assert [c.args[0] for c in client.insert_arrow.call_args_list] == ["measurements", "period_totals"]
    assert client.insert_arrow.call_args_list[1].args[1].column("value").to_pylist() == [Decimal(5)]
    assert client.method_calls[-1][0] in ("insert", "create_insert_context")  # the watermarks, last
    client.reset_mock()
    writer.write_batch(StoreBatch.of([], [], []))
    assert client.method_calls == []
