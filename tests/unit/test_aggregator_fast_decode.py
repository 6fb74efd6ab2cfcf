"""The aggregator's fast path (json.loads + shared.measurement_check + CatalogIndex.accepted)
gives exactly what the model path (pydantic + resolve) gives, on random envelopes.

The model path is the reference: the same records go through a Processor twice, once as
usual and once with the fast path switched off, and every outcome must be equal: the
folded series states, the raw rows for the store, the dead letters with their reasons and
indexes, the forwards, the duplicates.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.aggregator import envelopes
from services.aggregator.dedup import StoreDedup
from services.aggregator.processing import BatchResult, Processor, Record
from shared.resolution import Limits
from tests.unit.test_ingest_fast_path import CATALOG, NOW, measurements, ordinary_valid

LIMITS = Limits(max_future=timedelta(minutes=5), dedup_window=timedelta(days=35))


def processor() -> Processor:
    return Processor(
        catalog=lambda: CATALOG, refresh_catalog=lambda: None, limits=LIMITS, series={},
        dedup=StoreDedup(filter_bytes=1024, recent_capacity=10_000), closed_through=lambda customer, sub: 0,
        partition_of=lambda customer: 0 if customer != "globex" else 1,
    )


def outcome(records: list[Record], fast: bool) -> tuple[dict[str, Any], BatchResult, dict[str, Any]]:
    p = processor()
    if fast:
        result = p.process(records)
    else:
        with mock.patch.object(envelopes, "_checked_items", lambda value: None):
            result = p.process(records)
    letters = [(d.record.offset, d.index, d.reason, d.value) for d in result.dead_letters]
    return dict(p.series), result, {"letters": letters, "forwards": result.forwards}


def as_records(envelopes_: list[list[Any]]) -> list[Record]:
    records = []
    for offset, items in enumerate(envelopes_):
        value = json.dumps(items[0] if len(items) == 1 and offset % 2 else items).encode()
        records.append(Record("measurements", 0, offset, b"acme", value, NOW))
    return records


def assert_same(records: list[Record]) -> None:
    fast_series, fast_result, fast_rest = outcome(records, fast=True)
    model_series, model_result, model_rest = outcome(records, fast=False)
    assert fast_series == model_series
    assert fast_result.raw_rows == model_result.raw_rows
    assert fast_rest == model_rest
    assert (fast_result.folded, fast_result.duplicates, fast_result.dirty_series, fast_result.late_periods) == (
        model_result.folded, model_result.duplicates, model_result.dirty_series, model_result.late_periods)


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(st.lists(measurements(), min_size=1, max_size=4), min_size=1, max_size=3))
def test_the_fast_path_folds_and_dead_letters_exactly_as_the_model_path(batch: list[list[Any]]) -> None:
    assert_same(as_records(batch))


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(st.lists(ordinary_valid(), min_size=1, max_size=6), min_size=1, max_size=3))
def test_ordinary_valid_envelopes_fold_alike_and_take_the_fast_path(batch: list[list[Any]]) -> None:
    records = as_records(batch)
    for record in records:
        items = envelopes.decode(record.value)
        assert not isinstance(items, str) and all(item.checked is not None for item in items)
    assert_same(records)


def test_a_retried_id_is_a_duplicate_on_either_path() -> None:
    item = {"id": "r", "customer_name": "acme", "meter_name": "api_calls", "value": 3}
    records = as_records([[item, item], [item]])
    assert_same(records)
    assert outcome(records, fast=True)[1].duplicates == 2
