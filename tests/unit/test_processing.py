"""services.aggregator.processing.Processor on plain dicts: fold, dedup, replay, dead letters."""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.aggregator.dedup import IdFilter, StoreDedup
from services.aggregator.envelopes import Item
from services.aggregator.processing import FoldFact, Processor, Record, position
from services.aggregator.state_log import StateLog
from shared.catalog import Catalog, parse_catalog
from shared.folding import PeriodState, to_units
from shared.money import decimal_text
from shared.resolution import Limits
from shared.series_keys import SEP, dedup_key, parse_series_table_key, series_table_key
from tests.unit.test_state_log import Changelog

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
SUB = "acme@2026-01-01T00:00:00+00:00"
MARCH = "acme" + SEP + "api_calls" + SEP + "" + SEP + "2026-03-01T00:00:00Z"
FEBRUARY = "acme" + SEP + "api_calls" + SEP + "" + SEP + "2026-02-01T00:00:00Z"

DOCUMENT: dict[str, Any] = {
    "meters": [
        {"name": "api_calls", "event_name": "request"},
        {"name": "regions", "event_name": "request", "data_type": "STRING", "aggregation": "UNIQUE_COUNT",
         "primary_labels": ["zone"]},
    ],
    "price_plans": [{"name": "basic", "period": "monthly", "metered_components": []}],
    "customers": [{"name": "acme"}],
    "subscriptions": [{"customer_name": "acme", "price_plan_name": "basic", "start_time": "2026-01-01T00:00:00Z"}],
}


def make_catalog(document: dict[str, Any] = DOCUMENT) -> Catalog:
    catalog, problems = parse_catalog(document)
    assert problems == []
    return catalog


def new_dedup(recent: int = 10_000) -> StoreDedup:
    return StoreDedup(filter_bytes=1024, recent_capacity=recent)


def make_processor(series: dict[str, Any] | None = None, seen: StoreDedup | None = None,
                   closed: int = 0, catalog: Catalog | None = None) -> Processor:
    current = catalog or make_catalog()
    return Processor(
        catalog=lambda: current,
        refresh_catalog=lambda: None,
        limits=Limits(max_future=timedelta(minutes=5), dedup_window=timedelta(days=35)),
        series={} if series is None else series,
        dedup=new_dedup() if seen is None else seen,
        closed_through=lambda customer, sub_key: closed,
    )


def record(offset: int, value: Any, key: bytes | None = b"acme", partition: int = 0) -> Record:
    payload = value if isinstance(value, bytes) or value is None else json.dumps(value).encode()
    return Record("measurements", partition, offset, key, payload, NOW)


def usage(id: str, value: Any, time: str = "2026-03-05T00:00:00Z", **extra: Any) -> dict[str, Any]:
    return {"id": id, "customer_name": "acme", "meter_name": "api_calls", "value": value, "time": time, **extra}


def test_valid_records_fold_into_the_period_series() -> None:
    p = make_processor()
    result = p.process(
        [record(0, usage("a", 2)), record(1, usage("b", 3)), record(2, usage("c", 5, "2026-02-20T00:00:00Z"))]
    )
    assert (result.folded, result.duplicates, result.dead_letters) == (3, 0, [])
    assert p.series[MARCH] == PeriodState(datetime(2026, 4, 1, tzinfo=UTC), to_units(Decimal(5)), 2, position(1))
    assert p.series[FEBRUARY] == PeriodState(datetime(2026, 3, 1, tzinfo=UTC), to_units(Decimal(5)), 1, position(2))
    assert result.dirty_series == {MARCH, FEBRUARY}
    assert p.dedup.recent == {dedup_key("acme", "api_calls", "a"): (position(0), 0),
                              dedup_key("acme", "api_calls", "b"): (position(1), 0),
                              dedup_key("acme", "api_calls", "c"): (position(2), 0)}
    assert result.max_event_time == {0: datetime(2026, 3, 5, tzinfo=UTC)}
    assert [row[2] for row in result.raw_rows] == ["a", "b", "c"]
    assert result.late_periods == set()


def test_an_event_name_feeds_every_matching_meter_and_series() -> None:
    p = make_processor()
    m = {"id": "e1", "customer_name": "acme", "event_name": "request", "value": "eu-1",
         "time": "2026-03-05T00:00:00Z", "labels": {"zone": "z1"}}
    result = p.process([record(0, m)])
    assert result.dead_letters[0].reason == "value: must be a number for INT meter 'api_calls'"
    m["value"] = 7
    result = p.process([record(1, m)])
    assert result.folded == 2
    regions = SEP.join(["acme", "regions", "zone=z1", "2026-03-01T00:00:00Z"])
    assert value_of(p.series[MARCH]) == "7"
    assert value_of(p.series[regions]) == "1" and list(getattr(p.series[regions], "uniques", None) or ()) == ["7"]


def test_a_duplicate_id_at_another_offset_is_counted_once() -> None:
    p = make_processor()
    result = p.process([record(0, usage("a", 2)), record(1, usage("a", 2)), record(5, usage("a", 9))])
    assert (result.folded, result.duplicates) == (1, 2)
    assert value_of(p.series[MARCH]) == "2"
    assert len(result.raw_rows) == 1
    # ...and in a later batch too.
    again = p.process([record(9, usage("a", 2))])
    assert (again.folded, again.duplicates, again.dead_letters) == (0, 1, [])
    assert value_of(p.series[MARCH]) == "2"


def test_the_same_id_on_another_meter_is_not_a_duplicate() -> None:
    p = make_processor()
    result = p.process([record(0, usage("a", 2)), record(1, {**usage("a", "x"), "meter_name": "regions"})])
    assert (result.folded, result.duplicates) == (2, 0)


def test_replay_after_a_crash_changes_no_totals() -> None:
    series: dict[str, Any] = {}
    seen = new_dedup()
    records = [record(0, usage("a", 2)), record(1, usage("b", 3)), record(2, usage("a", 2))]
    first = make_processor(series, seen).process(records)
    assert (first.folded, first.duplicates) == (2, 1)
    before = copy.deepcopy((series, seen.recent))
    # The worker died before committing offsets: the same records come again.
    replay = make_processor(series, seen).process(records)
    assert (series, seen.recent) == before
    assert value_of(series[MARCH]) == "5"
    assert (replay.folded, replay.duplicates) == (0, 1)
    # The series is still marked dirty so its absolute total is rewritten to the store.
    assert replay.dirty_series == {MARCH}


def test_a_crash_between_the_dedup_table_and_the_series_table() -> None:
    # The id's first carrier is known (its raw row is in the store), its series state was
    # not persisted: the first carrier itself refolds, nothing doubles.
    seen = new_dedup()
    make_processor({}, seen).process([record(0, usage("a", 2))])
    series: dict[str, Any] = {}
    result = make_processor(series, seen).process([record(0, usage("a", 2))])
    assert (result.folded, value_of(series[MARCH])) == (1, "2")


def value_of(state: Any) -> str:
    """A series' quantity as the state log writes it."""
    return decimal_text(state.value)


def reasons(result: Any) -> list[str]:
    return [letter.reason for letter in result.dead_letters]


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"acme", b"{not json", "body: Invalid JSON: key must be a string at line 1 column 2"),
        (b"acme", b"\xff\xfe", "body: Invalid JSON: expected value at line 1 column 1"),
        (b"acme", None, "value: empty record (a measurement JSON object or array is required)"),
        (b"acme", b"[" * 100_000 + b"]" * 100_000, "body: Invalid JSON: recursion limit exceeded at line 1 column 202"),
        (b"acme", b"42", "body: Input should be an object"),
        (b"acme", b'{"a": 1} trailing', "body: Invalid JSON: trailing characters at line 1 column 10"),
        (b"acme", {"customer_name": "acme", "meter_name": "api_calls", "value": 1}, "id: Field required"),
        (b"acme", usage("a", "many"), "value: must be a number for INT meter 'api_calls'"),
        (b"acme", usage("a", 1.5), "value: must be a whole number for INT meter 'api_calls'"),
        (b"acme", {**usage("a", 1), "meter_name": "ghost"}, "meter_name: unknown meter 'ghost'"),
        (b"acme", {**usage("a", 1), "customer_name": "nobody"}, "customer_name: unknown customer 'nobody'"),
        (b"acme", usage("a", 1, "2025-12-31T23:00:00Z"), "time: is older than the 35-day dedup window"),
        (b"acme", usage("a", 1, "2026-03-10T12:06:00Z"), "time: is more than 300 s in the future"),
    ],
)
def test_dead_letters_name_the_field(key: bytes | None, value: Any, reason: str) -> None:
    p = make_processor()
    bad = record(3, value, key=key)
    result = p.process([bad])
    assert reasons(result) == [reason]
    assert result.dead_letters[0].record is bad
    assert (result.folded, p.series, p.dedup.recent, result.raw_rows) == (0, {}, {}, [])


def test_a_dead_letter_does_not_stop_the_batch() -> None:
    p = make_processor()
    result = p.process([record(0, usage("a", 1)), record(1, b"oops"), record(2, usage("b", 1))])
    assert result.folded == 2 and len(result.dead_letters) == 1
    assert result.dead_letters[0].record.offset == 1


def refreshing_processor(before: dict[str, Any], after: dict[str, Any]) -> tuple[Processor, list[int]]:
    """A Processor whose catalog is `before` until its first refresh, `after` from then on."""
    calls: list[int] = []
    catalogs = [make_catalog(before)]

    def refresh() -> None:
        calls.append(1)
        catalogs[0] = make_catalog(after)

    p = Processor(
        catalog=lambda: catalogs[0], refresh_catalog=refresh,
        limits=Limits(max_future=timedelta(minutes=5), dedup_window=timedelta(days=35)),
        series={}, dedup=new_dedup(), closed_through=lambda c, s: 0,
    )
    return p, calls


def test_the_catalog_is_refreshed_once_for_an_unknown_entity() -> None:
    p, calls = refreshing_processor({**DOCUMENT, "customers": [], "subscriptions": []}, DOCUMENT)
    result = p.process([record(0, usage("a", 4))])
    assert (calls, result.folded, result.dead_letters) == ([1], 1, [])


def test_the_catalog_is_refreshed_once_for_a_customer_whose_subscription_is_not_known_yet() -> None:
    # The customer arrived in the view before its subscription (found by the quick bench
    # in CI: measurements produced right after the catalog were dead-lettered).
    p, calls = refreshing_processor({**DOCUMENT, "subscriptions": []}, DOCUMENT)
    result = p.process([record(0, usage("a", 4)), record(1, usage("b", 1))])
    assert (calls, result.folded, result.dead_letters) == ([1], 2, [])


def test_a_measurement_no_subscription_covers_is_dead_lettered_after_one_refresh() -> None:
    without = {**DOCUMENT, "subscriptions": []}
    p, calls = refreshing_processor(without, without)
    result = p.process([record(0, usage("a", 4)), record(1, usage("b", 1))])
    assert calls == [1] and result.folded == 0
    assert [d.reason for d in result.dead_letters] == [
        "time: customer 'acme' has no subscription covering 2026-03-05T00:00:00+00:00"] * 2


def test_late_usage_into_a_closed_period_is_reported() -> None:
    p = make_processor(closed=2)  # January (0) and February (1) are closed
    result = p.process([record(0, usage("late", 4, "2026-02-27T00:00:00Z")), record(1, usage("ok", 1))])
    assert result.folded == 2
    assert result.late_periods == {("acme", SUB, 1)}
    assert value_of(p.series[FEBRUARY]) == "4"
    # A replay of the late record folds nothing and reports nothing new.
    replay = p.process([record(0, usage("late", 4, "2026-02-27T00:00:00Z"))])
    assert (replay.folded, replay.late_periods) == (0, set())


def test_max_event_time_per_partition() -> None:
    p = make_processor()
    result = p.process([
        record(0, usage("a", 1, "2026-03-05T00:00:00Z"), partition=0),
        record(1, usage("b", 1, "2026-03-07T00:00:00Z"), partition=0),
        record(0, usage("c", 1, "2026-03-06T00:00:00Z"), partition=1),
        record(2, usage("d", 1, "2026-03-01T00:00:00Z"), partition=0),
    ])
    assert result.max_event_time == {0: datetime(2026, 3, 7, tzinfo=UTC),
                                     1: datetime(2026, 3, 6, tzinfo=UTC)}


def test_series_table_key_round_trips_even_with_the_separator_in_a_label() -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_series_table_key(series_table_key("acme", "api_calls", "zone=a", start)) == (
        "acme", "api_calls", "zone=a", "2026-03-01T00:00:00Z"
    )
    hostile = "zone=a" + SEP + "b"
    assert parse_series_table_key(series_table_key("acme", "regions", hostile, start)) == (
        "acme", "regions", hostile, "2026-03-01T00:00:00Z"
    )


def test_an_envelope_folds_every_item_even_several_into_one_series() -> None:
    p = make_processor()
    envelope = [usage("a", 2), usage("b", 3), usage("c", 4)]
    result = p.process([record(7, envelope)])
    assert (result.folded, result.dead_letters) == (3, [])
    assert value_of(p.series[MARCH]) == "9"
    assert p.series[MARCH].applied == position(7, 2)
    # A replay of the envelope changes nothing and is not mistaken for duplicates.
    replay = p.process([record(7, envelope)])
    assert (replay.folded, replay.duplicates, value_of(p.series[MARCH])) == (0, 0, "9")


def test_a_bad_item_of_an_envelope_is_dead_lettered_alone_with_its_index() -> None:
    p = make_processor()
    envelope = [usage("a", 2), usage("b", "many"), {"id": "c"}, usage("d", 5)]
    result = p.process([record(3, envelope)])
    assert result.folded == 2 and value_of(p.series[MARCH]) == "7"
    letters = [(d.index, d.reason, json.loads(d.payload or b"")) for d in result.dead_letters]
    assert letters == [
        (1, "value: must be a number for INT meter 'api_calls'", usage("b", "many")),
        (2, "value: Field required", {"id": "c"}),
    ]
    assert dict(result.dead_letters[0].as_letter().headers)["original_index"] == b"1"


def test_an_envelope_that_is_not_an_array_of_objects_is_one_dead_letter() -> None:
    p = make_processor()
    result = p.process([record(0, b"[1, 2"), record(1, [1, usage("a", 2)])])
    assert [d.index for d in result.dead_letters] == [None, 0]
    assert result.dead_letters[1].reason == "body: Input should be an object"
    assert value_of(p.series[MARCH]) == "2"


def test_a_measurement_in_another_customers_partition_is_forwarded_not_folded() -> None:
    current = make_catalog()
    p = Processor(
        catalog=lambda: current, refresh_catalog=lambda: None,
        limits=Limits(max_future=timedelta(minutes=5), dedup_window=timedelta(days=35)),
        series={}, dedup=new_dedup(), closed_through=lambda c, s: 0, partition_of=lambda customer: 1,
    )
    result = p.process([record(0, [usage("a", 2), {**usage("b", 3), "time": None}], key=b"whoever", partition=0)])
    assert (result.folded, p.series, result.dead_letters) == (0, {}, [])
    forwarded = [(f.customer, json.loads(f.value)) for f in result.forwards]
    assert forwarded[0] == ("acme", {**usage("a", 2), "value": "2", "labels": {}, "reset_total": False})
    # A measurement without a time keeps the time it was received at.
    assert forwarded[1][1]["time"] == "2026-03-10T12:00:00Z"
    # In its own partition it folds, whatever the record's key.
    again = p.process([record(5, usage("a", 2), key=None, partition=1)])
    assert again.folded == 1


def test_an_item_whose_folding_raises_is_dead_lettered_and_the_batch_goes_on() -> None:
    # A call out of the fold that raises, as a bug would: the last one before anything changes.
    exploding = [True]

    def closed_through(customer: str, sub_key: str) -> int:
        if exploding[0]:
            raise OverflowError("cannot hold it")
        return 0

    p = make_processor()
    p.closed_through = closed_through
    result = p.process([record(0, usage("a", 2))])
    assert [d.reason for d in result.dead_letters] == ["unprocessable: OverflowError: cannot hold it"]
    assert (p.series, p.dedup.recent) == ({}, {})  # nothing half-applied
    exploding[0] = False
    result = p.process([record(1, usage("b", 2))])
    assert result.folded == 1


def test_an_id_gone_from_memory_is_found_through_the_store() -> None:
    """Only the latest ids stay in memory; an older one is looked up (dedup.py). The
    store's answer (the first carrier's position) makes a later carrier a duplicate and a
    replay of the first carrier itself not one."""
    p = make_processor(seen=new_dedup(recent=1))
    p.dedup.filters[0] = IdFilter(1024)
    assert p.prepare([record(0, usage("a", 2))]) == []  # nothing in the filter: surely new
    p.process([record(0, usage("a", 2)), record(1, usage("b", 3))])  # "a" leaves memory
    key = dedup_key("acme", "api_calls", "a")
    assert key not in p.dedup.recent and p.dedup.filters[0].might_contain(key)
    again = [record(7, usage("a", 2)), record(0, usage("a", 2))]  # a retry, and a replay
    assert p.prepare(again) == [key]
    p.dedup.answers = {key: position(0)}  # what the store says: its row has position 0
    result = p.process(again)
    assert (result.duplicates, result.folded) == (1, 0)  # the replay is already applied
    assert p.dedup.answers == {}  # answers hold for one batch only


def test_prepare_leaves_out_what_is_forwarded_or_invalid() -> None:
    current = make_catalog()
    p = Processor(
        catalog=lambda: current, refresh_catalog=lambda: None,
        limits=Limits(max_future=timedelta(minutes=5), dedup_window=timedelta(days=35)),
        series={}, dedup=new_dedup(), closed_through=lambda c, s: 0, partition_of=lambda customer: 1,
    )
    assert p.prepare([record(0, usage("a", 2), partition=0), record(1, usage("b", "x"), partition=1)]) == []
    assert p.prepare([record(2, usage("c", 2), partition=1)]) == [dedup_key("acme", "api_calls", "c")]


def test_a_duplicate_inside_one_batch_is_caught_however_small_the_memory() -> None:
    # Found by tests/e2e/test_dedup_store.py: with 20 ids in memory, an id carried first
    # earlier in the same batch had been pushed out before its row was in the store.
    p = make_processor(seen=new_dedup(recent=1))
    batch = [record(i, usage(f"id-{i}", 1)) for i in range(5)] + [record(9, usage("id-0", 1))]
    p.prepare(batch)
    result = p.process(batch)
    assert (result.folded, result.duplicates) == (5, 1)
    assert len(p.dedup.recent) == 1  # trimmed once the batch is done


def test_a_catalog_change_between_prepare_and_process_is_judged_again() -> None:
    """The worker prepares a batch while the one before it is stored (batches.py): a
    subscription that arrives in between counts, as if the batch were judged only now."""
    document = {**DOCUMENT, "subscriptions": []}
    catalog = make_catalog(document)
    p = make_processor(catalog=catalog)
    batch = [record(0, usage("a", 2))]
    p.prepare(batch)
    catalog.put(make_catalog().subscriptions[SUB])
    result = p.process(batch)
    assert (result.folded, result.dead_letters) == (1, [])


def test_without_a_catalog_change_process_uses_what_prepare_judged() -> None:
    judged: list[object] = []

    class Watched(Processor):  # a subclass, not a patched method: Processor may be compiled
        def _item_facts(self, item: Item, received_at: datetime) -> list[FoldFact] | str:
            judged.append(item)
            return super()._item_facts(item, received_at)

    made = make_processor()
    p = Watched(catalog=made.catalog, refresh_catalog=made.refresh_catalog, limits=made.limits, series={},
                dedup=new_dedup(), closed_through=made.closed_through)
    batch = [record(0, usage("a", 2)), record(1, usage("b", 3))]
    p.prepare(batch)
    assert len(judged) == 2
    assert p.process(batch).folded == 2
    assert len(judged) == 2  # not judged a second time


def test_what_a_prepare_left_unused_is_dropped_by_the_next_prepare() -> None:
    p = make_processor()
    p.prepare([record(0, usage("a", 2))])  # prepared, never processed (a revoked partition)
    p.prepare([record(5, usage("b", 2))])
    assert set(p._decoded) == {(0, 5)}
    result = p.process([record(0, {"id": "a", "value": "x"})])  # the same position, read afresh
    assert (result.folded, len(result.dead_letters)) == (0, 1)


@pytest.mark.parametrize("meter", ["api_calls", "storage_gb"])  # a period state; a timeline (a gauge)
def test_a_series_changed_in_place_by_a_later_batch_reaches_the_state_log(meter: str) -> None:
    """The fold changes a known series' state in place without setting it again; the
    batch's touched series are marked changed at its end, so the next flush writes them."""
    document = {**DOCUMENT, "meters": [*DOCUMENT["meters"], {
        "name": "storage_gb", "event_name": "storage", "meter_type": "GAUGE", "aggregation": "MAX"}]}
    state = StateLog(partitions=1, partition_of=lambda customer: 0)
    p = make_processor(series=state.series, catalog=make_catalog(document))  # type: ignore[arg-type]
    log = Changelog()
    for offset in range(3):
        p.process([record(offset, usage(f"id-{offset}", offset + 1, meter_name=meter))])
        asyncio.run(state.flush(log.send))
    again = StateLog(partitions=1, partition_of=lambda customer: 0)
    again.load(0, log.compacted())
    [key] = list(state.series)
    assert again.series[key].to_json() == state.series[key].to_json()
    assert again.series[key].to_json() != PeriodState(NOW).to_json()
