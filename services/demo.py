"""`metering demo`: the whole pipeline on embedded defaults, from events to printed invoices.

The demo catalog is the worked example of semantics.md (the growth plan; acme sends
150,000 API calls, invoiced at 164.00) plus a customer routed by a measurement mapping
and a quiet customer who pays only the base price. Subscriptions start one month
before "now + a few seconds", so the first period ends shortly after the events are
in and closes on the short demo grace.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from confluent_kafka import Consumer

from services.infra import topics
from services.infra.catalog_view import publish_catalog
from services.infra.kafka_config import consumer_config
from services.infra.ports import free_port
from services.infra.stack import Stack
from services.settings import Settings
from shared.catalog import parse_catalog
from shared.models.invoice import Invoice
from shared.periods import anchor_for_period_ending, period_at_index

PERIOD_ENDS_IN = timedelta(seconds=25)

GROWTH_PLAN: dict[str, Any] = {
    "name": "growth-plan",
    "display_name": "Growth",
    "period": "monthly",
    "base_price": 49.00,
    "base_price_description": "Platform fee",
    "metered_components": [
        {
            "meter_name": "api_calls",
            "meter_display_name": "API calls",
            "price_scheme": {
                "scheme_type": "TIERED",
                "unit_name": "call",
                "prices": [
                    {"price": 0.00, "cap": 10000},
                    {"price": 0.001, "cap": 100000},
                    {"price": 0.0005, "cap": None},
                ],
            },
        }
    ],
}

STARTER_PLAN: dict[str, Any] = {
    "name": "starter-plan",
    "period": "monthly",
    "base_price": 10.00,
    "base_price_description": "Starter fee",
    "metered_components": [
        {
            "meter_name": "api_calls",
            "meter_display_name": "API calls",
            "price_scheme": {"scheme_type": "FLAT", "prices": [{"price": 0.002}]},
        }
    ],
}


def demo_catalog(start: datetime) -> dict[str, Any]:
    iso = start.isoformat().replace("+00:00", "Z")
    return {
        "meters": [
            {"name": "api_calls", "display_name": "API calls", "event_name": "api_request",
             "meter_type": "COUNTER", "data_type": "INT", "aggregation": "SUM", "unit_name": "call"},
        ],
        "price_plans": [GROWTH_PLAN, STARTER_PLAN],
        "customers": [
            {"name": "acme", "display_name": "Acme Corp"},
            {"name": "globex", "measurement_mappings": [{"label": "org_id", "value": "globex-123"}]},
            {"name": "initech", "display_name": "Initech (quiet this month)"},
        ],
        "subscriptions": [
            {"customer_name": "acme", "price_plan_name": "growth-plan", "start_time": iso},
            {"customer_name": "globex", "price_plan_name": "starter-plan", "start_time": iso},
            {"customer_name": "initech", "price_plan_name": "growth-plan", "start_time": iso},
        ],
    }


def demo_measurements(start: datetime, end: datetime) -> list[dict[str, Any]]:
    """acme: 150 x 1,000 calls; globex (by mapping, via event_name): 40 x 250 calls."""
    span = (end - start) * 0.9
    out: list[dict[str, Any]] = []
    for i in range(150):
        at = start + span * (i / 150)
        out.append({"id": f"acme-{i}", "meter_name": "api_calls", "customer_name": "acme",
                    "value": 1000, "time": at.isoformat().replace("+00:00", "Z")})
    for i in range(40):
        at = start + span * (i / 40)
        out.append({"id": f"globex-{i}", "event_name": "api_request", "labels": {"org_id": "globex-123"},
                    "value": 250, "time": at.isoformat().replace("+00:00", "Z")})
    return out


def run_demo(base: Settings) -> int:
    data_dir = base.data_dir / "demo"
    shutil.rmtree(data_dir, ignore_errors=True)
    settings = base.updated(
        data_dir=data_dir,
        kafka={"topic_prefix": "demo.", "consumer_group_prefix": f"demo-{secrets.token_hex(3)}"},
        http={"local_demo": True, "api_key": None,
              "port": free_port(), "aggregator_port": free_port(), "rater_port": free_port()},
        event_time={"allowed_lateness_seconds": 1.0, "grace_seconds": 2.0, "idle_seconds": 2.0},
    )
    print("starting the pipeline (local Kafka broker, embedded ClickHouse, three services)...", flush=True)
    with Stack(settings, log_dir=data_dir / "logs") as stack:
        print(f"ready: ingest on {stack.ingest_url}, logs in {data_dir / 'logs'}", flush=True)
        now = datetime.now(UTC).replace(microsecond=0)
        end = now + PERIOD_ENDS_IN
        # The period that ends at `end` is usually the first; on a day like May 31 it can
        # only be the second (anchor Mar 31), and the quiet first one is invoiced too.
        anchor, index = anchor_for_period_ending(end)
        start = period_at_index(anchor, "monthly", index).start
        catalog, problems = parse_catalog(demo_catalog(anchor))
        if problems:
            raise SystemExit(f"demo catalog is invalid: {problems}")
        publish_catalog(stack.settings, stack.bootstrap, catalog)
        batch = demo_measurements(start, end)
        response = _post_batch(stack.ingest_url, batch)
        print(f"sent {len(batch)} measurements: HTTP {response.status_code} {response.text}", flush=True)
        response = _post_batch(stack.ingest_url, batch)
        print(f"re-sent the same batch (retried by a client): HTTP {response.status_code}; "
              "duplicates are absorbed by measurement id", flush=True)
        print(f"waiting for the period {start:%Y-%m-%d %H:%M:%S} .. {end:%Y-%m-%d %H:%M:%S} UTC to close...",
              flush=True)
        expected = 3 * (index + 1)
        invoices = _await_invoices(stack.settings, stack.bootstrap, expected=expected, timeout=120.0)
        for invoice in sorted(invoices, key=lambda i: (i.period_start, i.customer_name)):
            print(_render(invoice))
        print("stopping the pipeline...", flush=True)
    print("done.")
    return 0 if len(invoices) == expected else 1


def _post_batch(url: str, batch: list[dict[str, Any]]) -> httpx.Response:
    return httpx.post(f"{url}/measurements/batch", json=batch, timeout=60.0)


def _await_invoices(settings: Settings, bootstrap: str, expected: int, timeout: float) -> list[Invoice]:
    consumer = Consumer(consumer_config(bootstrap, f"{settings.kafka.consumer_group_prefix}-printer"))
    consumer.subscribe([topics.name(settings, topics.INVOICES)])
    found: list[Invoice] = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None and message.value():
                found.append(Invoice.model_validate_json(message.value() or b""))
    finally:
        consumer.close()
    return found


def _render(invoice: Invoice) -> str:
    rows = [f"\n=== invoice {invoice.invoice_id} ({invoice.kind}, revision {invoice.revision})",
            f"customer {invoice.customer_name} on {invoice.price_plan_name}, "
            f"{invoice.period_start:%Y-%m-%d %H:%M:%S} .. {invoice.period_end:%Y-%m-%d %H:%M:%S} UTC"]
    for line in invoice.lines:
        label = line.description + (f" [{line.meter_name}]" if line.meter_name else "")
        rows.append(f"  {line.type:<14} {label:<40} qty {line.quantity!s:>10}  {line.amount:>10} {invoice.currency}")
    rows.append(f"  {'TOTAL':<14} {'':<40} {'':>14}  {invoice.total:>10} {invoice.currency}")
    rows.append("  event: " + json.dumps(json.loads(invoice.model_dump_json(exclude_none=True)))[:2000])
    return "\n".join(rows)



