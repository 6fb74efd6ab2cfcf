"""Two parts of the aggregator's hot path, alone: decoding envelopes and writing raw rows.

`python -m bench.hot_path_parts` prints µs per measurement for:
- decode: `services.aggregator.envelopes.decode` of envelopes of 1,000 measurements
  written as the fold phase writes them (`bench/fold.py`, packed by
  `services.ingest.envelopes.pack`): json.loads plus `shared.measurement_check.check`
  per item;
- write_raw: `StoreWriter.write_raw` of 13,000 raw rows, as `Processor.process` makes
  them from those envelopes, into an embedded store (chdb) in a temporary folder: wall
  time, the process's CPU time (the engine's own threads included), and the calling
  thread's CPU time outside the engine's query calls. chdb releases the GIL while it runs
  a query, so that last part (building the insert's bytes in Python) is what holds the
  aggregator's GIL. CPU times hold up on a busy machine better than wall times do.
The fold bench (`python -m bench --phases fold`) measures the whole aggregator; this
isolates two parts a profile of it names, so a change to either can be measured alone.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from chdb.state.sqlitelike import Connection

from bench.breakdown import bench_catalog, processor
from bench.catalog import customer_name
from bench.fold import _records
from services.aggregator.dedup import StoreDedup
from services.aggregator.envelopes import decode
from services.aggregator.processing import Record
from services.aggregator.writer import StoreWriter
from services.infra.clickhouse_store import apply_migrations, connect
from services.ingest.envelopes import pack
from services.settings import ClickHouseSettings, Settings
from shared.models.json_types import format_utc

CUSTOMERS = 2_000
ENVELOPE_ITEMS = 1_000
RAW_ROWS = 13_000


def envelopes(count: int) -> list[bytes]:
    """`count` measurements as the fold phase packs them: envelopes of up to 1,000."""
    names = [customer_name(i) for i in range(CUSTOMERS)]
    at = format_utc((datetime.now(UTC) - timedelta(minutes=1)).replace(microsecond=0))
    records, _ = _records(names, count, at)
    # One partition: every envelope holds the full 1,000 (more partitions only split them).
    return [value for _, value in pack(records, 1)]


def best_of(rounds: int, run: Callable[[], int]) -> tuple[float, float]:
    """Median wall and CPU µs per measurement over `rounds` runs (`run` returns its count)."""
    walls, cpus = [], []
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        count = run()
        walls.append((time.perf_counter() - wall) / count * 1e6)
        cpus.append((time.process_time() - cpu) / count * 1e6)
    return statistics.median(walls), statistics.median(cpus)


def decode_cost(values: list[bytes], rounds: int) -> tuple[float, float]:
    def run() -> int:
        count = 0
        for value in values:
            items = decode(value)
            assert not isinstance(items, str) and all(item.checked is not None for item in items)
            count += len(items)
        return count
    return best_of(rounds, run)


def raw_rows(values: list[bytes]) -> list[list[Any]]:
    """The raw rows the Processor hands the writer for these envelopes."""
    catalog = bench_catalog(CUSTOMERS)
    process = processor(catalog, {}, StoreDedup(filter_bytes=1 << 20, recent_capacity=100_000)).process
    now = datetime.now(UTC)
    result = process([Record("measurements", 0, offset, b"k", value, now) for offset, value in enumerate(values)])
    assert not result.dead_letters, result.dead_letters[:3]
    return result.raw_rows


@contextmanager
def engine_clock() -> Iterator[list[float]]:
    """The calling thread's CPU seconds inside chdb's query calls while the block runs (in [0])."""
    spent = [0.0]
    query = Connection.query

    def timed(self: Connection, *args: Any, **kwargs: Any) -> Any:
        began = time.thread_time()
        try:
            return query(self, *args, **kwargs)
        finally:
            spent[0] += time.thread_time() - began
    Connection.query = timed  # type: ignore[method-assign]
    try:
        yield spent
    finally:
        Connection.query = query  # type: ignore[method-assign]


def write_cost(rows: list[list[Any]], rounds: int) -> tuple[float, float, float]:
    """Median wall and CPU µs per row, and the calling thread's median CPU µs per row outside the engine."""
    with tempfile.TemporaryDirectory(prefix="hot-path-parts-") as folder:
        client = connect(Settings(data_dir=Path(folder), clickhouse=ClickHouseSettings(database="hot_path_parts")))
        apply_migrations(client)
        writer = StoreWriter(client)
        writer.write_raw(rows[:10])  # the first insert learns the column types
        outside: list[float] = []

        def run() -> int:
            with engine_clock() as engine:
                began = time.thread_time()
                writer.write_raw(rows)
                outside.append((time.thread_time() - began - engine[0]) / len(rows) * 1e6)
            return len(rows)
        wall, cpu = best_of(rounds, run)
        stored = client.query("SELECT count() FROM measurements FINAL").result_rows[0][0]
        assert stored == len(rows), stored  # every round wrote the same rows: replays collapse
        client.close()
        return wall, cpu, statistics.median(outside)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--part", choices=["decode", "write_raw"], help="only this part (default: both)")
    args = parser.parse_args(argv)
    values = envelopes(RAW_ROWS)
    assert len(values) == RAW_ROWS // ENVELOPE_ITEMS
    if args.part != "write_raw":
        wall, cpu = decode_cost(values, args.rounds)
        print(f"decode, envelopes of {ENVELOPE_ITEMS:,}: {wall:.2f} µs/measurement wall, {cpu:.2f} CPU")
    if args.part == "decode":
        return
    wall, cpu, outside = write_cost(raw_rows(values), args.rounds)
    print(f"write_raw, {RAW_ROWS:,} rows into chdb: {wall:.2f} µs/measurement wall, {cpu:.2f} CPU (process), "
          f"{outside:.2f} CPU outside the engine (holding the GIL)")


if __name__ == "__main__":
    main()
