"""The whole pipeline through its public interfaces, on the real broker and the real engine.

HTTP in (the ingest API), invoice events out (the invoices topic), store checked
through the aggregator's read API (in the embedded setup only the aggregator may
open the chdb data folder).
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.infra import topics
from services.infra.catalog_view import publish_catalog
from services.infra.stack import Stack
from services.settings import Settings
from shared.catalog import parse_catalog
from shared.periods import anchor_for_period_ending, period_at_index
from tests.e2e.streaming import auth
from tests.support.catalogs import worked_example_catalog
from tests.support.kafka import read_invoices, wait_for_no_lag
from tests.support.processes import resident_kib

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse]


def _batch(start: datetime, end: datetime) -> list[dict[str, Any]]:
    """150,000 API calls as 150 measurements of 1,000, spread over the period."""
    span = (end - start) * 0.9
    return [
        {"id": f"call-{i}", "meter_name": "api_calls", "customer_name": "acme", "value": 1000,
         "time": (start + span * (i / 150)).isoformat()}
        for i in range(150)
    ]


def _store(stack: Stack, what: str, customer: str) -> Any:
    response = httpx.get(f"{stack.aggregator_url}/store/{what}", params={"customer_name": customer},
                         headers=auth(stack), timeout=10)
    response.raise_for_status()
    return response.json()


def test_worked_example_invoices_164_and_a_replayed_batch_changes_nothing(pipeline_settings: Settings) -> None:
    settings = pipeline_settings
    with Stack(settings, log_dir=settings.data_dir / "logs") as stack:
        auth = {"Authorization": f"Bearer {settings.http.api_key.get_secret_value()}"}  # type: ignore[union-attr]
        end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=12)
        anchor, index = anchor_for_period_ending(end)  # index 1 on days like May 31
        start = period_at_index(anchor, "monthly", index).start
        catalog, problems = parse_catalog(worked_example_catalog(anchor))
        assert problems == []
        publish_catalog(stack.settings, stack.bootstrap, catalog)
        batch = _batch(start, end)

        response = httpx.post(f"{stack.ingest_url}/measurements/batch", json=batch, headers=auth, timeout=30)
        assert response.status_code == 202, response.text
        assert response.json() == {"accepted": 150}

        invoice_topic = topics.name(settings, topics.INVOICES)
        invoices = read_invoices(stack.bootstrap, invoice_topic, expected=index + 1, timeout=90)
        assert len(invoices) == index + 1
        invoice = max(invoices, key=lambda i: i.period_end)
        assert invoice.kind == "invoice" and invoice.revision == 0
        assert invoice.customer_name == "acme" and invoice.price_plan_name == "growth-plan"
        assert invoice.period_start == start and invoice.period_end == end
        assert [(line.type, line.quantity, line.amount) for line in invoice.lines] == [
            ("base_price", Decimal(1), Decimal("49.00")),
            ("usage", Decimal(150000), Decimal("115.00")),
        ]
        assert invoice.total == Decimal("164.00")
        assert str(invoice.total) == "164.00"

        totals_before = _store(stack, "totals", "acme")
        assert [(t["meter_name"], Decimal(t["value"]), t["events"]) for t in totals_before] == [
            ("api_calls", Decimal(150000), 150)
        ]

        # The same batch again, as a client retry would send it after the period closed.
        response = httpx.post(f"{stack.ingest_url}/measurements/batch", json=batch, headers=auth, timeout=30)
        assert response.status_code == 202, response.text
        wait_for_no_lag(
            stack.bootstrap, f"{settings.kafka.consumer_group_prefix}-aggregator",
            topics.name(settings, topics.MEASUREMENTS), timeout=60,
        )
        # Listen through several close ticks: nothing new may be published.
        after = read_invoices(stack.bootstrap, invoice_topic, expected=index + 1, timeout=30, settle=6.0)
        assert sorted(i.invoice_id for i in after) == sorted(i.invoice_id for i in invoices)
        assert _store(stack, "totals", "acme") == totals_before
        assert _store(stack, "measurement_count", "acme") == {"count": 150}
        stored = _store(stack, "invoices", "acme")
        # (On days like May 31 a quiet first period was invoiced too: 49.00.)
        found = [(s["invoice_id"], s["revision"], s["total"]) for s in stored]
        assert found[index:] == [(invoice.invoice_id, 0, "164.00")]

        # The public read API (ingest -> aggregator's store) shows the same facts.
        response = httpx.get(f"{stack.ingest_url}/invoices", params={"customer_name": "acme"}, headers=auth, timeout=30)
        assert response.status_code == 200
        assert response.json()["invoices"][index:] == [json.loads(invoice.model_dump_json(exclude_none=True))]
        one = httpx.get(f"{stack.ingest_url}/invoices/{invoice.invoice_id}", headers=auth, timeout=30)
        assert one.status_code == 200 and one.json()["total"] == "164.00"
        assert httpx.get(f"{stack.ingest_url}/invoices/nope", headers=auth, timeout=30).status_code == 404
        usage = httpx.get(
            f"{stack.ingest_url}/customers/acme/usage", headers=auth, timeout=30,
            params={"meter_name": "api_calls", "start_time": start.isoformat(), "end_time": end.isoformat(),
                    "window": "month"},
        )
        assert usage.status_code == 200, usage.text
        assert sum(Decimal(row["value"]) for row in usage.json()["data"]) == Decimal(150000)
        daily = httpx.get(
            f"{stack.ingest_url}/customers/acme/usage", headers=auth, timeout=30,
            params={"meter_name": "api_calls", "start_time": start.isoformat(), "end_time": end.isoformat()},
        ).json()["data"]
        assert len(daily) > 20 and sum(Decimal(row["value"]) for row in daily) == Decimal(150000)

    # The aggregator keeps Faust's folder in its data folder, never in the working directory.
    assert (settings.data_dir / "faust").is_dir()
    assert not list(Path.cwd().glob(f"{settings.kafka.consumer_group_prefix}-aggregator-data"))


def test_ingest_requires_the_api_key_and_names_bad_fields(pipeline_settings: Settings) -> None:
    with Stack(pipeline_settings, log_dir=pipeline_settings.data_dir / "logs") as stack:
        url = f"{stack.ingest_url}/measurements/batch"
        assert httpx.post(url, json=[], timeout=10).status_code == 401
        wrong = {"Authorization": "Bearer not-the-key"}
        assert httpx.post(url, json=[], headers=wrong, timeout=10).status_code == 401
        assert httpx.get(f"{stack.ingest_url}/readyz", timeout=10).status_code == 200

        auth = {"Authorization": f"Bearer {pipeline_settings.http.api_key.get_secret_value()}"}  # type: ignore[union-attr]
        response = httpx.post(
            url, headers=auth, timeout=10,
            json=[{"id": "a", "meter_name": "api_calls", "customer_name": "nobody", "value": 1},
                  {"id": "b", "meter_name": "api_calls", "value": True}],
        )
        assert response.status_code == 400
        errors = response.json()["errors"]
        reason = "must be a number (or a string for a STRING meter), not a boolean"
        assert {"index": 1, "field": "value", "reason": reason} in errors

        if not pipeline_settings.clickhouse.url:  # the embedded engine's library: its start-up pages given back
            aggregator = stack.children["aggregator"].pid
            log_file = pipeline_settings.data_dir / "logs" / "aggregator.log"
            deadline = time.monotonic() + 30
            while (paged := re.search(r"asked the kernel to reclaim (\d+) MiB", log_file.read_text())) is None:
                assert time.monotonic() < deadline, "the aggregator never paged out the engine's library"
                time.sleep(0.2)
            assert int(paged.group(1)) > 100, paged.group(0)  # the library maps about 530 MiB
            assert resident_kib(aggregator, "/chdb/_chdb") / 1024 < 150

