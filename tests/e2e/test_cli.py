"""The operator and producer commands against a running pipeline: catalog apply, send,
invoice preview; and the API key never reaches a log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from services.infra import topics
from services.infra.stack import Stack
from services.settings import Settings, settings_env
from tests.support.catalogs import worked_example_catalog
from tests.support.kafka import wait_for_no_lag

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse]


def _metering(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_env(settings)}
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env=env, capture_output=True,
                          text=True, timeout=120)


def test_catalog_apply_send_and_preview_through_the_commands(pipeline_settings: Settings, tmp_path: Path) -> None:
    with Stack(pipeline_settings, log_dir=pipeline_settings.data_dir / "logs") as stack:
        start = datetime.now(UTC) - timedelta(days=3)
        document = worked_example_catalog(start, customers=("acme", "o'brien \\ 顧客"))
        good = tmp_path / "catalog.yaml"
        good.write_text(yaml.safe_dump(json.loads(json.dumps(document, default=str))))
        applied = _metering(stack.settings, "catalog", "apply", str(good))
        assert applied.returncode == 0, applied.stderr
        assert "applied 6 catalog entities" in applied.stdout

        bad = tmp_path / "bad.yaml"
        bad.write_text(yaml.safe_dump({"price_plans": [{"name": "p", "period": "weekly", "metered_components": []}]}))
        refused = _metering(stack.settings, "catalog", "apply", str(bad))
        assert refused.returncode == 1
        assert "price_plans[0].period: Input should be 'monthly', 'quarterly' or 'annual'" in refused.stderr

        lines = [json.dumps({"id": f"c{i}", "meter_name": "api_calls", "customer_name": "o'brien \\ 顧客",
                             "value": 500, "time": (start + timedelta(hours=i)).isoformat()}) for i in range(30)]
        events = tmp_path / "events.jsonl"
        events.write_text("\n".join(lines) + "\n")
        url = ["--url", stack.ingest_url]
        sent = _metering(stack.settings, "send", str(events), "--batch-size", "7", *url)
        assert sent.returncode == 0, sent.stderr
        assert "sent 30 measurements" in sent.stderr
        resent = _metering(stack.settings, "send", str(events), *url)  # a retried upload: deduplicated
        assert resent.returncode == 0
        wait_for_no_lag(stack.bootstrap, f"{stack.settings.kafka.consumer_group_prefix}-aggregator",
                        topics.name(stack.settings, topics.MEASUREMENTS), timeout=60)

        preview = _metering(stack.settings, "invoice", "preview", "--customer", "o'brien \\ 顧客", *url)
        assert preview.returncode == 0, preview.stderr
        draft = json.loads(preview.stdout)
        # 15,000 calls: 10,000 free + 5,000 x 0.001 = 5.00, plus the 49.00 base price.
        assert draft["draft"] is True and draft["total"] == "54.00"
        lines = [(line["type"], line["amount"]) for line in draft["lines"]]
        assert lines == [("base_price", "49.00"), ("usage", "5.00")]

        key = stack.settings.http.api_key.get_secret_value()  # type: ignore[union-attr]
        httpx.post(f"{stack.ingest_url}/measurements", json={}, headers={"Authorization": "Bearer wrong"}, timeout=10)
        for log in (stack.settings.data_dir / "logs").glob("*.log"):
            assert key not in log.read_text(errors="replace"), f"API key leaked into {log.name}"
