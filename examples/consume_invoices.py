"""A downstream invoice consumer: exactly the committed invoices, each applied once.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 python examples/consume_invoices.py

See docs/invoices.md. Read with `isolation.level=read_committed` (the rater publishes in
transactions); keep what you applied by `invoice_id` (deterministic), so a redelivery
after your own crash is recognised and skipped.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal

from confluent_kafka import Consumer


def main() -> None:
    topic = os.environ.get("METERING_TOPIC_PREFIX", "metering.") + "invoices"
    consumer = Consumer({
        "bootstrap.servers": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        "group.id": os.environ.get("GROUP_ID", "example-invoice-consumer"),
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    consumer.subscribe([topic])
    applied: set[str] = set()  # in production: a unique key in your own database
    balances: dict[str, Decimal] = {}
    try:
        while True:
            message = consumer.poll(1.0)
            if message is None or message.error() is not None or message.value() is None:
                continue
            invoice = json.loads(message.value(), parse_float=Decimal)  # money stays Decimal
            if invoice["invoice_id"] not in applied:
                customer = invoice["customer_name"]
                # A correction carries the difference, so adding it is always right.
                balances[customer] = balances.get(customer, Decimal(0)) + Decimal(invoice["total"])
                applied.add(invoice["invoice_id"])
                print(f"{invoice['kind']:<10} {customer:<20} rev {invoice['revision']} "
                      f"{invoice['period_start']}..{invoice['period_end']} {invoice['total']} {invoice['currency']}"
                      f"  (balance {balances[customer]})")
            consumer.commit(message=message, asynchronous=False)
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
