"""Migrations and idempotent writes on the real ClickHouse engine (chdb or a server)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.aggregator import dedup
from services.aggregator.dedup import IdFilter, filter_from_store, first_carriers, id_hashes
from services.aggregator.processing import RAW_COLUMNS
from services.aggregator.writer import StoreWriter
from services.infra import queries
from services.infra.clickhouse_store import apply_migrations, connect, migrations
from services.settings import ClickHouseSettings, Settings
from shared.series_keys import dedup_key

pytestmark = pytest.mark.clickhouse

HOSTILE = ["o'brien", 'quo"te', "back\\slash", "x'); DROP TABLE measurements; --", "ünï 顧客 🚀", "{customer:String}"]


@pytest.fixture
def store_settings(chdb_root: Path, clickhouse_url: str | None, unique: str) -> Settings:
    return Settings(data_dir=chdb_root, clickhouse=ClickHouseSettings(url=clickhouse_url, database=f"t_{unique}"))


def test_migrations_apply_once_in_order(store_settings: Settings) -> None:
    client = connect(store_settings)
    names = [name for _, name, _ in migrations()]
    assert apply_migrations(client) == names
    assert apply_migrations(client) == []
    tables = {row[0] for row in client.query("SHOW TABLES").result_rows}
    assert {"measurements", "period_totals", "watermarks", "invoices", "schema_migrations"} <= tables


def _raw(customer: str, measurement_id: str, value: str, offset: int) -> list[Any]:
    at = datetime(2026, 1, 5, tzinfo=UTC)
    return [customer, "api_calls", measurement_id, "", Decimal(value), "", at, {"k": customer}, False, "m", 0, offset,
            offset * 2**20]


def test_replayed_writes_change_nothing_and_newest_total_wins(store_settings: Settings) -> None:
    client = connect(store_settings)
    apply_migrations(client)
    writer = StoreWriter(client)
    rows = [_raw("acme", f"id-{i}", "1000", i) for i in range(5)]
    writer.write_raw(rows)
    writer.write_raw(rows)  # a replay after a crash
    assert queries.measurement_count(client, {"customer_name": "acme"}) == {"count": 5}

    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    for version, value in [(3, "3000"), (4, "5000"), (3, "3000")]:  # old version replayed last
        writer.write_totals([["acme", "api_calls", "", start, end, Decimal(value), version + 1, version]])
    totals = queries.period_totals(client, {"customer_name": "acme"})
    assert [(t["value"], t["events"]) for t in totals] == [("5000", 5)]


def test_raw_rows_are_stored_as_the_row_insert_stores_them(store_settings: Settings) -> None:
    """write_raw inserts an Arrow table; clickhouse-connect's row insert, which it replaced,
    is the reference: every column of every row reads back the same, to the last digit,
    microsecond and label."""
    client = connect(store_settings)
    apply_migrations(client)
    client.command("CREATE TABLE measurements_by_rows AS measurements")
    at = datetime(2026, 1, 5, 12, 30, 15, 123456, tzinfo=UTC)
    values = [
        Decimal("99999999999999999999999999.999999999999"), Decimal("-99999999999999999999999999.999999999999"),
        Decimal("0.000000000001"), Decimal("1." + "0" * 100), Decimal("1E+25"), Decimal("12.5"), Decimal(0),
        Decimal("0E-999999999"), Decimal(7),
    ]
    times = [at, at.replace(microsecond=0), at.replace(microsecond=999_999), datetime(1970, 1, 1, tzinfo=UTC),
             datetime(2299, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)]
    labels = [{}, {"region": "eu"}, {"zeta": "", "ünï 顧客 🚀": HOSTILE[3], **{f"k{n}": "v" for n in range(30)}}]
    rows = [
        [HOSTILE[i % len(HOSTILE)], "api_calls" if i % 2 else "visitors", f"id-{i}", "region=eu" if i % 3 else "",
         values[i % len(values)], "v" * 1024 if i == 4 else "", times[i % len(times)], labels[i % len(labels)],
         i % 2 == 0, "m", 2**32 - 1 if i == 5 else i, 2**63 + i, i * 2**20 + 7]
        for i in range(45)
    ]
    StoreWriter(client).write_raw(rows)
    client.insert("measurements_by_rows", rows, column_names=RAW_COLUMNS)
    columns = ", ".join(RAW_COLUMNS)
    stored = client.query(f"SELECT {columns} FROM measurements ORDER BY id").result_rows
    reference = client.query(f"SELECT {columns} FROM measurements_by_rows ORDER BY id").result_rows
    assert len(stored) == len(rows) and stored == reference
    by_id = {row[2]: row for row in rows}
    for got in stored:
        sent = by_id[got[2]]
        assert got[4] == sent[4] and got[6].replace(tzinfo=UTC) == sent[6] and got[7] == sent[7]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_customer_names_round_trip_through_parameterized_queries(store_settings: Settings, name: str) -> None:
    client = connect(store_settings)
    apply_migrations(client)
    writer = StoreWriter(client)
    writer.write_raw([_raw(name, "only", "7.5", 1)])
    assert queries.measurement_count(client, {"customer_name": name}) == {"count": 1}
    assert queries.measurement_count(client, {"customer_name": name + "x"}) == {"count": 0}
    tables = {row[0] for row in client.query("SHOW TABLES").result_rows}
    assert "measurements" in tables


@pytest.mark.parametrize("window,start", [
    ("hour", "2026-01-05T00:00:00Z"), ("day", "2026-01-05T00:00:00Z"),
    # toStartOfMonth() is a Date, not a DateTime: it too must read as an instant.
    ("month", "2026-01-01T00:00:00Z"),
])
def test_usage_windows_start_as_rfc3339_instants(store_settings: Settings, window: str, start: str) -> None:
    client = connect(store_settings)
    apply_migrations(client)
    StoreWriter(client).write_raw([_raw("acme", "only", "5", 1)])
    rows = queries.windowed_usage(client, {
        "customer_name": "acme", "meter_name": "api_calls", "start_time": "2026-01-01T00:00:00Z",
        "end_time": "2026-02-01T00:00:00Z", "window": window, "aggregation": "SUM",
    })
    assert [(r["window_start"], r["value"]) for r in rows] == [(start, "5")]


def test_a_period_sum_of_the_largest_accepted_values_fits_the_store(store_settings: Settings) -> None:
    # Issue 13, finding 2: two accepted values of 26 nines on one series summed past
    # Decimal(38, 12), the insert raised OverflowError and the worker crash-looped.
    client = connect(store_settings)
    apply_migrations(client)
    writer = StoreWriter(client)
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    largest = Decimal("99999999999999999999999999.999999999999")  # 26 integer, 12 fractional digits
    # Far more values than a period can hold at any plausible rate, all at the maximum.
    total = largest * 10**30
    writer.write_totals([["acme", "api_calls", "", start, end, total, 10**15, 1]])
    [row] = queries.period_totals(client, {"customer_name": "acme"})
    assert Decimal(row["value"]) == total


def test_the_store_rebuilds_the_id_filter_and_places_first_carriers(
    store_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dedup.py's store side: ClickHouse computes the same hashes as the worker, and the
    first carrier of an id is its smallest position within the window."""
    client = connect(store_settings)
    apply_migrations(client)
    writer = StoreWriter(client)
    rows = [_raw(name, f"id-{i}", "1", i) for i, name in enumerate(HOSTILE)]
    writer.write_raw(rows)
    writer.write_raw([_raw(HOSTILE[0], "id-0", "1", 9)])  # the same id again, later (outside a window)
    since = datetime(2026, 1, 1, tzinfo=UTC)
    h1, h2 = id_hashes(client, "m", 0, since)
    rebuilt = IdFilter(4096)
    rebuilt.add_hashes(h1, h2)
    keys = [dedup_key(name, "api_calls", f"id-{i}") for i, name in enumerate(HOSTILE)]
    assert all(rebuilt.might_contain(key) for key in keys) and len(h1) == len(HOSTILE) + 1  # id-0 twice
    assert not rebuilt.might_contain(dedup_key("acme", "api_calls", "id-0"))
    assert id_hashes(client, "m", 1, since)[0].size == 0  # another partition's ids are not ours
    assert id_hashes(client, "m", 0, datetime(2026, 2, 1, tzinfo=UTC))[0].size == 0  # outside the window
    sliced = [id_hashes(client, "m", 0, since, 3, index)[0] for index in range(3)]
    assert sorted(int(h) for part in sliced for h in part) == sorted(int(h) for h in h1)  # slices: a partition
    monkeypatch.setattr(dedup, "SLICE_IDS", 2)  # several slices even here
    from_store = filter_from_store(writer.read, "m", 0, since, 4096)
    assert bytes(from_store._array) == bytes(rebuilt._array) and from_store.added == len(h1)
    found = first_carriers(client, [*keys, dedup_key("nobody", "api_calls", "x")], since)
    assert found == {key: i * 2**20 for i, key in enumerate(keys)}
