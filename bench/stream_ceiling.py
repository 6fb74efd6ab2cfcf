"""The stream framework's own ceiling: Faust consuming measurement records and doing nothing
more than the aggregator's bare minimum.

Run as its own process (a Faust worker owns its event loop): it reads the records with
`stream.take_events(2000, within=0.2)`, exactly as the aggregator does, and nothing else.
It reads `count` records already in `topic`, prints one JSON line with the records per
second between the first and the last record, and exits. This is the most the
aggregator can fold through Faust on this machine, before any work of ours.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

import faust
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from bench.ceiling import measurement_values
from bench.procs import self_cpu_seconds
from services.infra.kafka_config import admin_config, producer_config
from services.infra.topics import _await_leaders


def run(bootstrap: str, topic: str, count: int, mode: str, partitions: int) -> None:
    name = f"bench-stream-{mode}-{uuid.uuid4().hex[:8]}"
    datadir = tempfile.mkdtemp(prefix=name)
    app = faust.App(
        name, broker=f"kafka://{bootstrap}", store="memory://", datadir=datadir,
        topic_partitions=partitions, topic_replication_factor=1, consumer_auto_offset_reset="earliest",
        producer_linger=0.005, producer_max_batch_size=512 * 1024, web_enabled=False,
        key_serializer="raw", value_serializer="raw", table_standby_replicas=0,
    )
    source = app.topic(topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    state: dict[str, Any] = {"seen": 0, "first": None, "cpu": None}

    @app.agent(source)
    async def fold(stream: Any) -> None:
        async for events in stream.take_events(2000, within=0.2):
            if state["first"] is None:
                state["first"], state["cpu"] = time.perf_counter(), self_cpu_seconds()
            state["seen"] += len(events)
            if state["seen"] >= count:
                elapsed = time.perf_counter() - state["first"]
                cpu = self_cpu_seconds() - state["cpu"]
                print(json.dumps({"mode": mode, "records": state["seen"], "seconds": elapsed,
                                  "per_s": state["seen"] / elapsed, "cpu_cores": cpu / elapsed}), flush=True)
                # Measured; a worker's orderly stop takes seconds and proves nothing here.
                shutil.rmtree(datadir, ignore_errors=True)
                os._exit(0)

    worker = faust.Worker(app, loglevel="WARNING", quiet=True, override_logging=False)
    sys.argv = sys.argv[:1]
    worker.execute_from_commandline()


def measure(bootstrap: str, count: int, partitions: int, timeout: float = 600.0) -> dict[str, Any]:
    """Write `count` measurement records to a topic of its own, then time the `consume` mode."""
    topic = f"bench-stream-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(admin_config(bootstrap))
    for future in admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)]).values():
        future.result()
    _await_leaders(admin, [topic], 30)
    producer = Producer(producer_config(
        bootstrap, extra={"compression.type": "lz4", "queue.buffering.max.messages": 500_000}
    ))
    for key, value in measurement_values(count, 1000):
        producer.produce(topic, value, key)
        producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("stream ceiling: records undelivered")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.stream_ceiling", "--bootstrap", bootstrap, "--topic", topic,
             "--count", str(count), "--partitions", str(partitions), "--mode", "consume"],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    finally:
        admin.delete_topics([topic])
    # (Faust's terminal handling may put an escape sequence in front of the line.)
    lines = [line[line.index('{"mode"'):] for line in done.stdout.splitlines() if '{"mode"' in line]
    if not lines:
        raise RuntimeError(f"stream ceiling printed no result: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--mode", choices=("consume",), required=True)
    args = parser.parse_args()
    run(args.bootstrap, args.topic, args.count, args.mode, args.partitions)


if __name__ == "__main__":
    main()
