"""Choices where the contract is open (docs/decisions.md, "Measurements and meters"),
each held here where no other test shows it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pydantic
import pytest

from shared.models import Measurement, Meter, MeteredComponent
from shared.rating import billable_quantity
from shared.series_keys import SEP
from shared.timeline import counter_quantity, empty_timeline, insert, is_order_dependent
from tests.support.instants import utc
from tests.unit.test_processing import DOCUMENT, NOW, make_catalog, make_processor, record, usage


def test_a_meter_name_wins_over_an_event_name() -> None:
    catalog = make_catalog()  # api_calls and regions both take event_name "request"
    both = Measurement(id="1", meter_name="api_calls", event_name="request", value=1, labels={"zone": "a"})
    assert [m.name for m in catalog.meters_for(both)] == ["api_calls"]


def test_an_unknown_customer_name_is_not_rescued_by_a_mapping() -> None:
    mapped = {"name": "acme", "measurement_mappings": [{"label": "tenant", "value": "t-1"}]}
    catalog = make_catalog({**DOCUMENT, "customers": [mapped]})
    labels = {"tenant": "t-1"}
    assert catalog.customer_for(Measurement(id="1", meter_name="api_calls", value=1, labels=labels)) == "acme"
    named = Measurement(id="1", meter_name="api_calls", customer_name="ghost", value=1, labels=labels)
    assert catalog.customer_for(named) is None


def test_on_the_kafka_path_a_measurement_without_time_takes_the_record_timestamp() -> None:
    p = make_processor()
    untimed = {k: v for k, v in usage("u1", 3).items() if k != "time"}
    result = p.process([record(0, untimed)])
    assert result.folded == 1
    assert result.max_event_time == {0: NOW}
    _, _, measurement_id, _, _, _, at, *_ = result.raw_rows[0]
    assert (measurement_id, at) == ("u1", NOW)


def test_unique_count_counts_distinct_values_whatever_is_incremental_says() -> None:
    visitors = {"name": "visitors", "data_type": "STRING", "aggregation": "UNIQUE_COUNT", "is_incremental": False}
    catalog = make_catalog({**DOCUMENT, "meters": [*DOCUMENT["meters"], visitors]})
    assert not is_order_dependent(Meter.model_validate(visitors))
    p = make_processor(catalog=catalog)
    values = ["u1", "u2", "u1"]
    p.process([record(i, usage(f"v{i}", v, meter_name="visitors")) for i, v in enumerate(values)])
    key = SEP.join(["acme", "visitors", "", "2026-03-01T00:00:00Z"])
    assert p.series[key].to_json()[0] == 2 * 10**12  # in units of 10**-12


def _running_total(aggregation: str) -> Decimal | None:
    meter = Meter(name="requests", aggregation=aggregation, is_incremental=False)  # type: ignore[arg-type]
    timeline = empty_timeline()
    points = [(1, 100, False), (2, 250, False), (3, 40, True), (4, 90, False)]
    for offset, (day, value, reset) in enumerate(points):
        insert(timeline, utc(2026, 1, day), Decimal(value), reset, offset)
    return counter_quantity(meter, timeline, utc(2026, 1, 1), utc(2026, 2, 1))


def test_a_running_total_aggregates_its_increments() -> None:
    # Increments 100, 150, 40 (reset), 50.
    assert [_running_total(a) for a in ("SUM", "COUNT", "MAX", "MIN")] == [
        Decimal(340), Decimal(4), Decimal(150), Decimal(40)
    ]


def test_a_late_point_of_an_order_dependent_meter_reopens_every_later_closed_period() -> None:
    level = {"name": "storage", "meter_type": "GAUGE", "aggregation": "SUM", "is_incremental": False}
    catalog = make_catalog({**DOCUMENT, "meters": [*DOCUMENT["meters"], level]})
    late: dict[str, Any] = {}
    for meter in ("storage", "api_calls"):
        p = make_processor(catalog=catalog, closed=3)  # January, February and March are closed
        result = p.process([record(0, usage(f"{meter}-late", 4, "2026-02-20T00:00:00Z", meter_name=meter))])
        late[meter] = sorted(index for _, _, index in result.late_periods)
    # A gauge level carries into March; a counter's increment stays in February.
    assert late == {"storage": [1, 2], "api_calls": [1]}


@pytest.mark.parametrize("aggregation", ["COUNT", "UNIQUE_COUNT"])
def test_a_gauge_aggregates_by_sum_max_or_min_only(aggregation: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="a GAUGE meter aggregates by SUM, MAX or MIN"):
        Meter.model_validate({"name": "g", "meter_type": "GAUGE", "aggregation": aggregation})


@pytest.mark.parametrize(("unit", "quantity"), [("second", 7200), ("minute", 120), (None, 2), ("day", Decimal(1) / 12)])
def test_a_gauge_sum_is_priced_in_the_schemes_time_unit_seconds_included(unit: str | None, quantity: Any) -> None:
    scheme: dict[str, Any] = {"scheme_type": "FLAT", "prices": [{"price": 1}]}
    if unit is not None:
        scheme["time_unit_name"] = unit
    component = MeteredComponent.model_validate(
        {"meter_name": "gb", "meter_display_name": "GB", "price_scheme": scheme}
    )
    gauge = Meter(name="gb", meter_type="GAUGE", is_incremental=False)
    assert billable_quantity(component, Decimal(7200), gauge) == quantity  # 1 GB for two hours
