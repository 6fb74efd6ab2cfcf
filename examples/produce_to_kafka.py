"""Writing measurements straight to Kafka, for producers that already run a Kafka client.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 python examples/produce_to_kafka.py acme 10

Contract (see README, "Topics"): topic `<prefix>measurements` (default
`metering.measurements`), key = the customer name as UTF-8, value = measurement JSON,
Kafka's default murmur2 partitioner (librdkafka: `partitioner=murmur2_random`). The
aggregator applies the same validation as the HTTP API; a record it cannot accept goes
to `<prefix>dead-letters` with a `reason` header. `id` makes retries safe.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from datetime import datetime, timezone

from confluent_kafka import Producer


def main() -> None:
    customer = sys.argv[1] if len(sys.argv) > 1 else "acme"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 10
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

    for _ in range(count):
        measurement = {
            "id": str(uuid.uuid4()),
            "meter_name": "api_calls",
            "customer_name": customer,
            "value": 1,
            "time": datetime.now(timezone.utc).isoformat(),
        }
        producer.produce(topic, key=customer.encode(), value=json.dumps(measurement).encode(), on_delivery=delivered)
        producer.poll(0)
    producer.flush(30)
    if failures:
        raise SystemExit(f"{len(failures)} measurements were not delivered: {failures[0]}")
    print(f"produced {count} measurements for {customer} to {topic}")


if __name__ == "__main__":
    main()
