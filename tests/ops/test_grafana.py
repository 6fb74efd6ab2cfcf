"""Grafana provisioning and dashboards; every ClickHouse panel's SQL on the real engine.

The SQL runs as the ClickHouse plugin would send it: its macros are expanded exactly as
grafana-clickhouse-datasource (v4) expands them, on a database made by our migrations
and filled with a small, known set of rows, and each panel's answer is checked.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.infra.clickhouse_store import apply_migrations, connect
from services.settings import ClickHouseSettings, Settings
from tests.ops.support import DEPLOY
from tests.support.instants import utc

pytestmark = pytest.mark.ops

GRAFANA = DEPLOY / "grafana"
DASHBOARD_FILES = sorted((GRAFANA / "dashboards").glob("*.json"))
PROVISIONED_UIDS = {"prometheus": "prometheus", "clickhouse": "grafana-clickhouse-datasource"}


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def clickhouse_panels() -> list[tuple[str, str]]:
    found = []
    for path in DASHBOARD_FILES:
        for panel in panels(load(path)):
            for target in panel.get("targets", []):
                if target["datasource"]["type"] == "grafana-clickhouse-datasource":
                    found.append((panel["title"], target["rawSql"]))
    return found


# ------------------------------------------------------------------ structure


def test_two_dashboards_with_stable_uids() -> None:
    uids = {load(path)["uid"]: load(path)["title"] for path in DASHBOARD_FILES}
    assert set(uids) == {"metering-pipeline-health", "metering-usage-revenue"}


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.name)
def test_dashboard_is_well_formed(path: Path) -> None:
    dashboard = load(path)
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    boxes = []
    for panel in panels(dashboard):
        box = panel["gridPos"]
        assert box["x"] >= 0 and box["x"] + box["w"] <= 24 and box["h"] > 0, panel["title"]
        boxes.append((panel["title"], box))
        if panel["type"] == "row":
            continue
        assert panel.get("title") and panel.get("description"), f"panel {panel['id']} needs a title and description"
        assert panel["targets"], panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            source = target["datasource"]
            known = PROVISIONED_UIDS.get(source["uid"]) == source["type"]
            assert known, f"{panel['title']}: unknown datasource {source}"
            if source["type"] == "grafana-clickhouse-datasource":
                assert target["editorType"] == "sql" and target["format"] in (0, 1) and target["rawSql"].strip()
    for i, (title_a, a) in enumerate(boxes):  # panels do not overlap
        for title_b, b in boxes[i + 1:]:
            across = a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
            down = a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]
            overlap = across and down
            assert not overlap, f"{title_a} overlaps {title_b}"


def test_datasources_are_provisioned_with_the_uids_the_dashboards_use() -> None:
    config = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "metering.yaml").read_text())
    provisioned = {source["uid"]: source for source in config["datasources"]}
    assert {uid: s["type"] for uid, s in provisioned.items()} == PROVISIONED_UIDS
    clickhouse = provisioned["clickhouse"]
    assert clickhouse["jsonData"]["protocol"] == "http" and clickhouse["jsonData"]["port"] == 8123
    assert "password" in clickhouse["secureJsonData"]


def test_dashboards_provider_points_at_the_dashboards() -> None:
    config = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "metering.yaml").read_text())
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/metering"  # compose mounts them there


def test_usage_dashboard_covers_usage_customers_and_money() -> None:
    titles = {title for title, _ in clickhouse_panels()}
    assert {"Usage per meter and period", "Top customers by usage", "Top customers by invoiced amount",
            "Invoiced amount per billing month"} <= titles


# ------------------------------------------------------------- macros, as the plugin does

FROM = datetime(2026, 1, 1, tzinfo=UTC)
TO = datetime(2026, 3, 1, tzinfo=UTC)
INTERVAL_SECONDS = 3600


def expand_macros(sql: str, start: datetime = FROM, end: datetime = TO, interval: int = INTERVAL_SECONDS) -> str:
    """grafana-clickhouse-datasource v4's macros (pkg/macros/macros.go)."""
    f, t = int(start.timestamp()), int(end.timestamp())
    fm, tm = f * 1000, t * 1000
    with_args: dict[str, Callable[[str], str]] = {
        "timeFilter_ms": lambda c: f"{c} >= fromUnixTimestamp64Milli({fm}) AND {c} <= fromUnixTimestamp64Milli({tm})",
        "timeFilter": lambda c: f"{c} >= toDateTime({f}) AND {c} <= toDateTime({t})",
        "dateFilter": lambda c: f"{c} >= toDate('{start:%Y-%m-%d}') AND {c} <= toDate('{end:%Y-%m-%d}')",
        "timeInterval_ms": lambda c: f"toStartOfInterval(toDateTime64({c}, 3), INTERVAL {interval * 1000} millisecond)",
        "timeInterval": lambda c: f"toStartOfInterval(toDateTime({c}), INTERVAL {interval} second)",
    }
    plain = {
        "fromTime_ms": f"fromUnixTimestamp64Milli({fm})", "toTime_ms": f"fromUnixTimestamp64Milli({tm})",
        "fromTime": f"toDateTime({f})", "toTime": f"toDateTime({t})", "interval_s": str(interval),
    }
    for name, expand in with_args.items():
        # re.sub calls the lambda before the loop moves on, so the late binding is harmless.
        sql = re.sub(rf"\$__{name}\(\s*([^)]*?)\s*\)", lambda m: expand(m.group(1)), sql)  # noqa: B023
    for name, value in plain.items():
        sql = re.sub(rf"\$__{name}(\(\))?(?!\w)", value, sql)
    assert "$" not in sql, f"a macro or variable is left that the test does not expand: {sql}"
    return sql


def test_macro_expansion_matches_the_plugin() -> None:
    assert expand_macros("WHERE $__timeFilter(event_time)") == (
        "WHERE event_time >= toDateTime(1767225600) AND event_time <= toDateTime(1772323200)"
    )
    assert expand_macros("$__timeInterval(t)") == "toStartOfInterval(toDateTime(t), INTERVAL 3600 second)"
    assert expand_macros("$__fromTime < x AND x < $__toTime") == (
        "toDateTime(1767225600) < x AND x < toDateTime(1772323200)"
    )


# --------------------------------------------------------------- the real engine


JAN, FEB, MAR = utc(2026, 1, 1), utc(2026, 2, 1), utc(2026, 3, 1)

MEASUREMENT_COLUMNS = ["customer_name", "meter_name", "id", "series", "value", "string_value", "event_time",
                       "labels", "reset_total", "topic", "partition", "offset"]
TOTAL_COLUMNS = ["customer_name", "meter_name", "series", "period_start", "period_end", "value", "events", "version"]
WATERMARK_COLUMNS = ["topic", "partition", "max_event_time", "watermark", "version"]
INVOICE_COLUMNS = ["invoice_id", "revision", "kind", "customer_name", "price_plan_name", "period_start",
                   "period_end", "currency", "total", "issued_at", "body"]


def measurement(customer: str, meter: str, ident: str, at: datetime, offset: int) -> list[Any]:
    return [customer, meter, ident, "", Decimal(1), "", at, {}, False, "metering.measurements", 0, offset]


@pytest.fixture(scope="module")
def store(chdb_root: Path, clickhouse_url: str | None) -> Any:
    database = f"t_{uuid.uuid4().hex[:10]}"
    client = connect(Settings(data_dir=chdb_root, clickhouse=ClickHouseSettings(url=clickhouse_url, database=database)))
    apply_migrations(client)
    day = timedelta(days=1)
    measurements = [
        measurement("acme", "api_calls", "a1", JAN + 4 * day, 1),
        measurement("acme", "api_calls", "a2", JAN + 5 * day, 2),
        measurement("acme", "api_calls", "a3", FEB + 1 * day, 9),
        measurement("acme", "storage_gb", "s1", JAN + 6 * day, 3),
        measurement("beta", "api_calls", "b1", JAN + 7 * day, 4),
        measurement("beta", "api_calls", "b2", JAN + 8 * day, 5),
        measurement("gamma", "api_calls", "g1", JAN + 9 * day, 6),
    ]
    client.insert("measurements", measurements, column_names=MEASUREMENT_COLUMNS)
    client.insert("measurements", measurements[:2], column_names=MEASUREMENT_COLUMNS)  # a replay
    client.insert("period_totals", [
        ["acme", "api_calls", "", JAN, FEB, Decimal(100), 1, 1],  # an older version, replaced
        ["acme", "api_calls", "", JAN, FEB, Decimal(150000), 2, 2],
        ["acme", "storage_gb", "", JAN, FEB, Decimal(20), 1, 3],
        ["beta", "api_calls", "", JAN, FEB, Decimal(500), 2, 5],
        ["gamma", "api_calls", "", JAN, FEB, Decimal(42), 1, 6],
        ["acme", "api_calls", "", FEB, MAR, Decimal(10), 1, 9],  # still open
    ], column_names=TOTAL_COLUMNS)
    client.insert("watermarks", [
        ["metering.measurements", 0, FEB + 10 * day, FEB + 10 * day, 9],
        ["metering.measurements", 1, FEB + 12 * day, FEB + 12 * day, 7],
    ], column_names=WATERMARK_COLUMNS)
    issued = FEB + timedelta(hours=2)
    invoices = [
        ["inv-acme-0", 0, "invoice", "acme", "growth", JAN, FEB, "USD", Decimal("164.00"), issued, "{}"],
        ["inv-acme-1", 1, "correction", "acme", "growth", JAN, FEB, "USD", Decimal("5.00"), FEB + 2 * day, "{}"],
        ["inv-beta-0", 0, "invoice", "beta", "starter", JAN, FEB, "EUR", Decimal("49.00"), issued, "{}"],
    ]
    client.insert("invoices", invoices, column_names=INVOICE_COLUMNS)
    client.insert("invoices", invoices[:1], column_names=INVOICE_COLUMNS)  # copied twice
    return client


def rows(result: Any) -> list[dict[str, Any]]:
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def _measurements_per_meter(found: list[dict[str, Any]]) -> None:
    per_meter: dict[str, int] = {}
    for row in found:
        per_meter[row["meter_name"]] = per_meter.get(row["meter_name"], 0) + row["measurements"]
        assert isinstance(row["time"], datetime)
    assert per_meter == {"api_calls": 6, "storage_gb": 1}


def _usage_per_meter_and_period(found: list[dict[str, Any]]) -> None:
    got = {(r["period_start"].date().isoformat(), r["meter_name"]): (r["quantity"], r["customers"]) for r in found}
    assert got == {
        ("2026-02-01", "api_calls"): (Decimal(10), 1),
        ("2026-01-01", "api_calls"): (Decimal(150542), 3),
        ("2026-01-01", "storage_gb"): (Decimal(20), 1),
    }


def _top_customers_by_usage(found: list[dict[str, Any]]) -> None:
    assert [(r["meter_name"], r["customer_name"], r["quantity"]) for r in found] == [
        ("api_calls", "acme", Decimal(150010)), ("api_calls", "beta", Decimal(500)),
        ("api_calls", "gamma", Decimal(42)), ("storage_gb", "acme", Decimal(20)),
    ]


def _invoiced_in_range(found: list[dict[str, Any]]) -> None:
    assert [(r["currency"], r["invoiced"]) for r in found] == [("EUR", Decimal("49.00")), ("USD", Decimal("169.00"))]


def _invoice_kinds(found: list[dict[str, Any]]) -> None:
    assert [(r["kind"], r["events"]) for r in found] == [("correction", 1), ("invoice", 2)]


def _customers_invoiced(found: list[dict[str, Any]]) -> None:
    assert [r["customers"] for r in found] == [2]


def _invoiced_per_month(found: list[dict[str, Any]]) -> None:
    assert [(r["time"].date().isoformat(), r["currency"], r["invoiced"]) for r in found] == [
        ("2026-01-01", "EUR", Decimal("49.00")), ("2026-01-01", "USD", Decimal("169.00")),
    ]


def _top_customers_by_invoiced(found: list[dict[str, Any]]) -> None:
    assert [(r["customer_name"], r["invoiced"], r["invoices"], r["corrections"]) for r in found] == [
        ("acme", Decimal("169.00"), 1, 1), ("beta", Decimal("49.00"), 1, 0),
    ]


def _closed_without_invoice(found: list[dict[str, Any]]) -> None:
    assert [(r["customer_name"], r["period_start"].date().isoformat()) for r in found] == [("gamma", "2026-01-01")]


def _watermarks(found: list[dict[str, Any]]) -> None:
    days = [(r["partition"], r["watermark"].date().isoformat()) for r in found]
    assert days == [(0, "2026-02-11"), (1, "2026-02-13")]
    assert all(r["lag_seconds"] > 0 for r in found)


EXPECTED: dict[str, Callable[[list[dict[str, Any]]], None]] = {
    "Measurements stored per meter": _measurements_per_meter,
    "Usage per meter and period": _usage_per_meter_and_period,
    "Top customers by usage": _top_customers_by_usage,
    "Invoiced in range": _invoiced_in_range,
    "Invoices and corrections in range": _invoice_kinds,
    "Customers invoiced in range": _customers_invoiced,
    "Invoiced amount per billing month": _invoiced_per_month,
    "Top customers by invoiced amount": _top_customers_by_invoiced,
    "Closed periods without an invoice": _closed_without_invoice,
    "Watermarks": _watermarks,
}


def test_every_clickhouse_panel_has_an_expected_answer() -> None:
    assert sorted(title for title, _ in clickhouse_panels()) == sorted(EXPECTED)


@pytest.mark.clickhouse
@pytest.mark.parametrize("title,sql", clickhouse_panels(), ids=[t for t, _ in clickhouse_panels()])
def test_clickhouse_panel_answers_on_the_real_engine(store: Any, title: str, sql: str) -> None:
    found = rows(store.query(expand_macros(sql)))
    assert found, f"{title}: no rows"
    EXPECTED[title](found)


@pytest.mark.clickhouse
def test_time_range_filters_apply(store: Any) -> None:
    """Outside the data's months the time-filtered panels are empty."""
    sql = dict(clickhouse_panels())["Top customers by invoiced amount"]
    assert rows(store.query(expand_macros(sql, utc(2025, 1, 1), utc(2025, 2, 1)))) == []
