"""Which producer settings carry the ingest service's records fastest: measured, not guessed.

`python -m bench.produce_settings [--seconds S] [--concurrency C]` starts a local broker
and drives the ingest service's own Publisher (services/ingest/publisher.py) as the HTTP
handlers do: C requests in flight, each publishing the records of 1,000 measurements
(packed into envelopes, one per partition) and waiting for every delivery report. For
each candidate setting it prints measurements/s, the p50/p99 time of one publish, and
the CPU the process spent per measurement. It also prints the raw-produce ceiling of
bench/ceiling.py from the same run, for scale.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from bench import ceiling
from bench.load import percentile
from services.infra.kafka_broker import LocalKafkaBroker
from services.infra.kafka_config import admin_config
from services.infra.topics import _await_leaders
from services.ingest.publisher import PRODUCER_OVERRIDES, Publisher

PARTITIONS = 4
BATCH = 1000

CANDIDATES: dict[str, dict[str, object]] = {
    "current": dict(PRODUCER_OVERRIDES),
    "none, linger 5": {"compression.type": "none", "linger.ms": 5},
    "lz4, linger 5": {"compression.type": "lz4", "linger.ms": 5},
    "zstd, linger 5": {"compression.type": "zstd", "linger.ms": 5},
    "lz4, linger 0": {"compression.type": "lz4", "linger.ms": 0},
    "lz4, linger 2": {"compression.type": "lz4", "linger.ms": 2},
    "lz4, linger 20": {"compression.type": "lz4", "linger.ms": 20},
    "lz4, linger 5, batch 4 MB": {"compression.type": "lz4", "linger.ms": 5, "batch.size": 4_000_000},
    "lz4, linger 5, in flight 1": {"compression.type": "lz4", "linger.ms": 5,
                                   "max.in.flight.requests.per.connection": 1},
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def drive(publisher: Publisher, topic: str, records: list[tuple[bytes, bytes]], seconds: float,
                concurrency: int) -> tuple[int, list[float]]:
    latencies: list[float] = []
    published = 0
    deadline = time.monotonic() + seconds

    async def request() -> None:
        nonlocal published
        while time.monotonic() < deadline:
            began = time.perf_counter()
            await publisher.publish(topic, records)
            latencies.append(time.perf_counter() - began)
            published += len(records)

    await asyncio.gather(*(request() for _ in range(concurrency)))
    return published, latencies


def measure(bootstrap: str, name: str, overrides: dict[str, object], seconds: float, concurrency: int) -> str:
    topic = f"bench-produce-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(admin_config(bootstrap))
    for future in admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)]).values():
        future.result()
    _await_leaders(admin, [topic], 30)
    records = ceiling.measurement_values(BATCH, 1000)
    publisher = Publisher(bootstrap, partitions=PARTITIONS, overrides=overrides)
    try:
        asyncio.run(drive(publisher, topic, records, 1.0, concurrency))  # connected and warm
        cpu = cpu_seconds()
        started = time.perf_counter()
        published, latencies = asyncio.run(drive(publisher, topic, records, seconds, concurrency))
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds() - cpu
    finally:
        publisher.close()
        admin.delete_topics([topic])
    return (f"{name:<30} {published / elapsed:>10,.0f}/s  p50 {percentile(latencies, 0.5) * 1000:6.1f} ms"
            f"  p99 {percentile(latencies, 0.99) * 1000:6.1f} ms"
            f"  client CPU {cpu / published * 1e6:5.2f} µs/measurement")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.produce_settings")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=8, help="publishes in flight (HTTP requests)")
    parser.add_argument("--only", nargs="*", default=None, help="candidate names to run")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="produce-settings-") as folder:
        broker = LocalKafkaBroker(Path(folder) / "kafka").start()
        try:
            bootstrap = broker.bootstrap_servers
            raw = ceiling.measure(bootstrap, 300_000, PARTITIONS)
            print(f"raw produce ceiling (bench/ceiling.py): {raw.produce_per_s:,.0f} records/s of {raw.value_bytes} B")
            print(f"publishes of {BATCH} measurements, {args.concurrency} in flight, {args.seconds:.0f} s each")
            for name, overrides in CANDIDATES.items():
                if args.only is None or name in args.only:
                    print(measure(bootstrap, name, overrides, args.seconds, args.concurrency), flush=True)
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
