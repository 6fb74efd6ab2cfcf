"""Writing measurements straight to Kafka, for producers that already run a Kafka client.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 python examples/produce_to_kafka.py acme 10

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 python examples/produce_to_kafka.py acme 1000 --envelope

Contract (see README, "Topics"): topic `<prefix>measurements` (default
`metering.measurements`), key = the customer name as UTF-8, value = one measurement JSON
object, or (`--envelope`) a JSON array of measurements of that customer: far cheaper for
the aggregator, whose cost is per record. Kafka's default murmur2 partitioner
(librdkafka: `partitioner=murmur2_random`); a record in another partition is forwarded,
so it still counts, but costs a second trip. The aggregator applies the same validation
as the HTTP API; a measurement it cannot accept goes to `<prefix>dead-letters` with a
`reason` header (and `original_index` for an envelope item). `id` makes retries safe.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from datetime import UTC, datetime

from confluent_kafka import Producer


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--envelope"]
    envelope = "--envelope" in sys.argv
    customer = args[0] if args else "acme"
    count = int(args[1]) if len(args) > 1 else 10
    topic = os.environ.get("METERING_TOPIC_PREFIX", "metering.") + "measurements"
    producer = Producer({
        "bootstrap.servers": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        "enable.idempotence": True,  # broker-side retries never duplicate
        "acks": "all",
        "partitioner": "murmur2_random",  # same partition as Java clients and the aggregator
    })
    failures: list[str] = []

    def delivered(error: object, message: object) -> None:
        if error is not None:
            failures.append(str(error))

    measurements = [
        {
            "id": str(uuid.uuid4()),
            "meter_name": "api_calls",
            "customer_name": customer,
            "value": 1,
            "time": datetime.now(UTC).isoformat(),
        }
        for _ in range(count)
    ]
    # An envelope of 1,000 measurements of ~150 bytes stays far below the 1 MB record limit.
    records = [measurements[i:i + 1000] for i in range(0, count, 1000)] if envelope else measurements
    for record in records:
        producer.produce(topic, key=customer.encode(), value=json.dumps(record).encode(), on_delivery=delivered)
        producer.poll(0)
    producer.flush(30)
    if failures:
        raise SystemExit(f"{len(failures)} measurements were not delivered: {failures[0]}")
    print(f"produced {count} measurements for {customer} to {topic}")


if __name__ == "__main__":
    main()
