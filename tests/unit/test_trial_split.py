"""A trial ending mid-period: the aggregator reports the trial share, the rater bills the rest."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from services.aggregator.closing import Closer, SeriesIndex, Watermarks
from services.aggregator.processing import Record
from services.rater.invoicing import invoice_for
from services.rater.ledger import Ledger
from tests.unit.test_processing import DOCUMENT, make_catalog, make_processor

TRIAL_DOC: dict[str, Any] = copy.deepcopy(DOCUMENT)
TRIAL_DOC["meters"].append({"name": "storage", "meter_type": "GAUGE", "data_type": "FLOAT", "is_incremental": False})
TRIAL_DOC["price_plans"] = [{
    "name": "basic", "period": "monthly", "trial": {"time_length": 10, "time_unit_name": "day"},
    "metered_components": [
        {"meter_name": "api_calls", "meter_display_name": "API calls",
         "price_scheme": {"scheme_type": "FLAT", "prices": [{"price": 1}]}},
        {"meter_name": "storage", "meter_display_name": "Storage",
         "price_scheme": {"scheme_type": "FLAT", "time_unit_name": "day", "prices": [{"price": 1}]}},
    ],
}]
TRIAL_DOC["subscriptions"] = [
    {"customer_name": "acme", "price_plan_name": "basic", "start_time": "2026-03-01T00:00:00Z"},
]


def record(offset: int, value: dict[str, Any]) -> Record:
    return Record("measurements", 0, offset, b"acme", json.dumps(value).encode(), datetime(2026, 4, 1, tzinfo=UTC))


def _m(id: str, meter: str, value: Any, time: str) -> dict[str, Any]:
    return {"id": id, "customer_name": "acme", "meter_name": meter, "value": value, "time": time}


def test_only_usage_after_the_trial_is_billed() -> None:
    catalog = make_catalog(TRIAL_DOC)
    series: dict[str, Any] = {}
    processor = make_processor(series=series, catalog=catalog)
    processor.process([
        record(0, _m("a", "api_calls", 7, "2026-03-05T00:00:00Z")),  # in the trial (ends Mar 11)
        record(1, _m("b", "api_calls", 5, "2026-03-20T00:00:00Z")),  # after it
        record(2, _m("c", "storage", 2, "2026-03-01T00:00:00Z")),  # 2 GB all month
    ])
    index = SeriesIndex()
    index.rebuild(series)
    now = datetime(2026, 4, 2, tzinfo=UTC)
    closer = Closer(
        catalog=lambda: catalog, series=series, marks={}, index=index,
        watermarks=Watermarks(lateness=timedelta(0), idle=timedelta(seconds=1)), grace=timedelta(0),
        partitions=1, started=now - timedelta(hours=1),
    )
    (event,) = closer.tick({0}, now)
    assert event.totals == {"api_calls": {"": Decimal(12)}, "storage": {"": Decimal(2 * 31 * 86400)}}
    assert event.trial_totals == {"api_calls": {"": Decimal(7)}, "storage": {"": Decimal(2 * 10 * 86400)}}
    invoice = invoice_for(event, catalog, Ledger(), now)
    assert invoice is not None
    usage = {line.meter_name: (line.quantity, line.amount) for line in invoice.lines if line.type == "usage"}
    assert usage == {"api_calls": (Decimal(5), Decimal("5.00")), "storage": (Decimal(42), Decimal("42.00"))}
