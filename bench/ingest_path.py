"""CPU per measurement of the ingest service's two paths through a batch, stage by stage.

`python -m bench.ingest_path [--rounds N] [--customers N]` prints µs per measurement for
batches of 1,000 (the bench's HTTP batches), against a catalog of 20,000 customers:
- the usual path: JSON, model validation, judging (`resolve`), record serialisation;
- the fast path (services/ingest/fast_path.py): JSON, checks, judging against the
  catalog index, record encoding;
- packing the records into envelopes (both paths; services/ingest/envelopes.py).
Each stage takes the best of several rounds: the machine is shared, the minimum is
the cost. Both paths must produce the same records; the script checks that first.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench.breakdown import LIMITS, bench_catalog, event_time
from bench.catalog import customer_name
from services.ingest.envelopes import pack
from services.ingest.fast_path import FastPath, check_all, encode_all, judge_all
from services.ingest.measurement_routes import record_of
from services.ingest.validation import judge, parse_body, parse_measurement
from shared.catalog import Catalog
from shared.resolution import CatalogIndexes

BATCH = 1000
MAX_RECORD_BYTES = 1_000_000


def batch_body(labels: bool) -> bytes:
    at = event_time()
    items: list[dict[str, Any]] = []
    for i in range(BATCH):
        item: dict[str, Any] = {"id": f"b-{i}", "meter_name": "api_calls", "customer_name": customer_name(i % 1000),
                                "value": 1, "time": at}
        if labels:
            item["labels"] = {"region": "eu-west-1", "host": f"h-{i % 50}"}
        items.append(item)
    return json.dumps(items, separators=(",", ":")).encode()


def best(stages: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """µs per measurement of each stage: the minimum over `rounds` runs."""
    result = {}
    for name, stage in stages.items():
        stage()  # warm-up
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            stage()
            times.append(time.perf_counter() - started)
        result[name] = min(times) / BATCH * 1e6
    return result


def measure(catalog: Catalog, body: bytes, rounds: int) -> tuple[dict[str, float], dict[str, float]]:
    now = datetime.now(UTC)
    indexes = CatalogIndexes(lambda: catalog)
    raw = parse_body(body)
    parsed = [m for m, _ in (parse_measurement(item, i) for i, item in enumerate(raw)) if m is not None]
    facts, errors = judge(parsed, catalog, now, LIMITS)
    assert not errors, errors[:3]
    records = [record_of(m, f, now) for m, f in zip(parsed, facts, strict=True)]
    fast = FastPath(lambda: catalog, LIMITS, MAX_RECORD_BYTES).records(raw, now)
    assert fast == records, "the fast path must write the usual path's records"
    checked = check_all(raw)
    assert checked is not None
    customers = judge_all(checked, indexes.current(), now, LIMITS)
    assert customers is not None

    usual = best({
        "json": lambda: parse_body(body),
        "validate": lambda: [parse_measurement(item, i) for i, item in enumerate(raw)],
        "judge": lambda: judge(parsed, catalog, now, LIMITS),
        "serialise": lambda: [record_of(m, f, now) for m, f in zip(parsed, facts, strict=True)],
        "pack": lambda: pack(records, 4),
    }, rounds)
    fast_stages = best({
        "json": lambda: parse_body(body),
        "check": lambda: check_all(raw),
        "judge": lambda: judge_all(checked, indexes.current(), now, LIMITS),
        "encode": lambda: encode_all(checked, customers, now, MAX_RECORD_BYTES),
        "pack": lambda: pack(records, 4),
    }, rounds)
    return usual, fast_stages


def line(title: str, stages: dict[str, float]) -> str:
    return f"{title:<28}" + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()) + f"; total {sum(stages.values()):.2f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_path")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--customers", type=int, default=20_000)
    args = parser.parse_args(argv)
    catalog = bench_catalog(args.customers)
    print(f"ingest CPU per measurement (µs, best of {args.rounds} batches of {BATCH}, {args.customers} customers)")
    for labels in (False, True):
        usual, fast = measure(catalog, batch_body(labels), args.rounds)
        kind = "with 2 labels" if labels else "no labels"
        print(line(f"usual path ({kind}):", usual))
        print(line(f"fast path ({kind}):", fast))


if __name__ == "__main__":
    main()
