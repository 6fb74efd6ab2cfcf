"""`python -m bench --quick` runs every phase and fills every row of the table.

It asserts that the suite runs and measures, not how fast this machine is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse]

ROOT = Path(__file__).resolve().parents[2]
ROWS = {
    "ceiling", "ceiling_consume", "ceiling_stream", "fold", "fold_store", "ingest", "ingest_p50", "ingest_p99",
    "e2e", "e2e_p50", "e2e_p99", "e2e_low_p50", "e2e_low_p99",
    "rating", "memory", "dedup_memory", "hostile_small", "hostile",
}


@pytest.mark.timeout(900)
def test_quick_bench_fills_every_row(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=840,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    document = json.loads(out.read_text())
    table = {row["key"]: row for row in document["table"]}
    assert set(table) == ROWS
    for key, row in table.items():
        assert isinstance(row["value"], (int, float)) and row["value"] > 0, (key, row)
    # The printed table is the same one, row for row.
    for row in document["table"]:
        assert row["label"] in done.stdout
    assert document["details"]["e2e"]["totals_mismatched"] == 0
    assert document["details"]["rating"]["complete"] is True
    for fold in ("fold", "fold_store"):
        run = document["details"][fold]
        assert run["drained"] and run["totals_exact"] == run["totals_checked"] > 0, run
    dedup = document["details"]["dedup"]
    assert dedup["retries_all_caught"] and dedup["totals_exact"] == dedup["totals_checked"] > 0, dedup
    assert (dedup["folded"], dedup["dead_lettered"]) == (dedup["new_measurements"], 0), dedup
    for mix in ("hostile_small", "hostile"):
        assert document["details"][mix]["totals_exact"] and not document["details"][mix]["aggregator_restarted"]
