"""Watermarks and period close (semantics.md, Watermarks and period close)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.aggregator.closing import Closer, SeriesIndex, Watermarks
from services.infra.partitioning import customer_partition
from shared.catalog import Catalog, parse_catalog
from shared.folding import PeriodState, to_units
from shared.series_keys import series_table_key
from tests.support.instants import utc

STARTED = utc(2026, 1, 1)
SECOND = timedelta(seconds=1)
GRACE = timedelta(seconds=30)
SUB = "acme@2026-01-01T00:00:00+00:00"


# ---- Watermarks -----------------------------------------------------------------


def test_no_input_and_not_idle_yet_means_no_watermark() -> None:
    marks = Watermarks(lateness=10 * SECOND, idle=60 * SECOND)
    assert marks.watermark(0, STARTED + 59 * SECOND, STARTED) is None


def test_watermark_is_max_event_time_less_lateness() -> None:
    marks = Watermarks(lateness=10 * SECOND, idle=60 * SECOND)
    now = utc(2026, 2, 1, 12)
    marks.observe(0, utc(2026, 2, 1, 0, 0, 5), now)
    marks.observe(0, utc(2026, 1, 31), now)  # older: the watermark never goes back
    assert marks.watermark(0, now, STARTED) == utc(2026, 1, 31, 23, 59, 55)
    assert marks.watermark(1, now, now) is None  # partitions are independent


def test_an_idle_partition_advances_with_the_wall_clock() -> None:
    marks = Watermarks(lateness=10 * SECOND, idle=60 * SECOND)
    last = utc(2026, 2, 1, 12)
    marks.observe(0, utc(2026, 2, 1), last)
    assert marks.watermark(0, last + 59 * SECOND, STARTED) == utc(2026, 1, 31, 23, 59, 50)
    assert marks.watermark(0, last + 60 * SECOND, STARTED) == last + 50 * SECOND
    # A partition that never had input is idle since the worker started.
    assert marks.watermark(3, STARTED + 60 * SECOND, STARTED) == STARTED + 50 * SECOND


def test_the_wall_clock_never_pulls_the_watermark_back() -> None:
    marks = Watermarks(lateness=0 * SECOND, idle=60 * SECOND)
    last = utc(2026, 2, 1)
    marks.observe(0, utc(2026, 3, 1), last)  # event times ahead of the wall clock
    assert marks.watermark(0, last + 120 * SECOND, STARTED) == utc(2026, 3, 1)


def test_observing_without_an_event_time_only_resets_idleness() -> None:
    marks = Watermarks(lateness=0 * SECOND, idle=60 * SECOND)
    marks.observe(0, None, STARTED + 100 * SECOND)
    assert marks.watermark(0, STARTED + 130 * SECOND, STARTED) is None
    assert marks.max_event_time == {}


# ---- Closer ---------------------------------------------------------------------


def make_catalog(end_time: str | None = None) -> Catalog:
    subscription: dict[str, Any] = {
        "customer_name": "acme", "price_plan_name": "basic", "start_time": "2026-01-01T00:00:00Z",
    }
    if end_time:
        subscription["end_time"] = end_time
    catalog, problems = parse_catalog({
        "meters": [{"name": "api_calls"}],
        "price_plans": [{"name": "basic", "period": "monthly", "metered_components": []}],
        "customers": [{"name": "acme"}],
        "subscriptions": [subscription],
    })
    assert problems == []
    return catalog


class Harness:
    def __init__(self, catalog: Catalog | None = None, partitions: int = 1) -> None:
        current = catalog or make_catalog()
        self.series: dict[str, Any] = {}
        self.index = SeriesIndex()
        self.watermarks = Watermarks(lateness=0 * SECOND, idle=timedelta(days=1000))
        self.closer = Closer(
            catalog=lambda: current, series=self.series, marks={}, index=self.index,
            watermarks=self.watermarks, grace=GRACE, partitions=partitions, started=STARTED,
        )

    def usage(self, start: datetime, end: datetime, value: int) -> None:
        key = series_table_key("acme", "api_calls", "", start)
        self.series[key] = PeriodState(end, to_units(Decimal(value)), 1, 0)
        self.index.add(key)

    def tick_at(self, watermark: datetime) -> list[tuple[str, int, datetime, datetime, dict[str, Any]]]:
        self.watermarks.observe(0, watermark, watermark)
        return [
            (e.reason, e.period_index, e.period_start, e.period_end, e.totals)
            for e in self.closer.tick({0}, watermark)
        ]


def test_a_period_closes_once_the_watermark_reaches_end_plus_grace() -> None:
    h = Harness()
    h.usage(utc(2026, 1, 1), utc(2026, 2, 1), 5)
    assert h.tick_at(utc(2026, 2, 1) + GRACE - SECOND) == []
    closed = h.tick_at(utc(2026, 2, 1) + GRACE)
    assert closed == [("closed", 0, utc(2026, 1, 1), utc(2026, 2, 1), {"api_calls": {"": Decimal(5)}})]
    assert h.closer.closed_through("acme", SUB) == 1


def test_a_period_is_emitted_exactly_once() -> None:
    h = Harness()
    h.usage(utc(2026, 1, 1), utc(2026, 2, 1), 5)
    assert len(h.tick_at(utc(2026, 2, 2))) == 1
    assert h.tick_at(utc(2026, 2, 3)) == []
    assert h.tick_at(utc(2026, 2, 28)) == []


def test_a_jump_closes_every_period_passed_in_order() -> None:
    h = Harness()
    h.usage(utc(2026, 2, 1), utc(2026, 3, 1), 7)
    closed = h.tick_at(utc(2026, 3, 1, 0, 0, 30))
    assert closed == [
        ("closed", 0, utc(2026, 1, 1), utc(2026, 2, 1), {}),
        ("closed", 1, utc(2026, 2, 1), utc(2026, 3, 1), {"api_calls": {"": Decimal(7)}}),
    ]


def test_late_usage_re_emits_a_closed_period_once() -> None:
    h = Harness()
    h.usage(utc(2026, 1, 1), utc(2026, 2, 1), 5)
    h.tick_at(utc(2026, 2, 2))
    h.usage(utc(2026, 1, 1), utc(2026, 2, 1), 8)  # late usage folded into January
    h.closer.mark_late("acme", SUB, 0)
    h.closer.mark_late("acme", SUB, 0)  # marked twice, still emitted once
    assert h.tick_at(utc(2026, 2, 2, 1)) == [
        ("late_usage", 0, utc(2026, 1, 1), utc(2026, 2, 1), {"api_calls": {"": Decimal(8)}})
    ]
    assert h.tick_at(utc(2026, 2, 2, 2)) == []


def test_a_subscription_end_gives_a_short_final_period_and_nothing_after() -> None:
    h = Harness(make_catalog(end_time="2026-01-15T00:00:00Z"))
    h.usage(utc(2026, 1, 1), utc(2026, 1, 15), 3)
    assert h.tick_at(utc(2026, 1, 15) + GRACE - SECOND) == []
    assert h.tick_at(utc(2026, 1, 15) + GRACE) == [
        ("closed", 0, utc(2026, 1, 1), utc(2026, 1, 15), {"api_calls": {"": Decimal(3)}})
    ]
    assert h.tick_at(utc(2026, 6, 1)) == []


def test_only_owned_partitions_are_closed() -> None:
    h = Harness(partitions=8)
    acme = customer_partition("acme", 8)
    h.watermarks.observe(acme, utc(2026, 3, 1), utc(2026, 3, 1))
    others = {p for p in range(8) if p != acme}
    assert h.closer.tick(others, utc(2026, 3, 1)) == []
    assert [e.period_index for e in h.closer.tick({acme}, utc(2026, 3, 1))] == [0]


@pytest.mark.parametrize("index", [1, 5])
def test_marking_an_open_period_late_emits_nothing(index: int) -> None:
    h = Harness()
    h.tick_at(utc(2026, 2, 2))  # January closed
    h.closer.mark_late("acme", SUB, index)
    assert h.tick_at(utc(2026, 2, 3)) == []


def test_a_label_value_containing_the_key_separator_does_not_break_a_close() -> None:
    # Label values come from producers; one holding the table-key separator must not
    # crash the close (a crash here would repeat on every restart).
    h = Harness()
    hostile = series_table_key("acme", "api_calls", "zone=a\x1fb", utc(2026, 1, 1))
    h.series[hostile] = PeriodState(utc(2026, 2, 1), to_units(Decimal(2)), 1, 0)
    h.index.add(hostile)
    assert h.tick_at(utc(2026, 2, 2)) == [
        ("closed", 0, utc(2026, 1, 1), utc(2026, 2, 1), {"api_calls": {"zone=a\x1fb": Decimal(2)}})
    ]


# ---- The close schedule: a tick touches only what is due --------------------------


def many_customers_catalog(count: int) -> Catalog:
    catalog, problems = parse_catalog({
        "meters": [{"name": "api_calls"}],
        "price_plans": [{"name": "basic", "period": "monthly", "metered_components": []}],
        "customers": [{"name": f"c{i}"} for i in range(count)],
        "subscriptions": [
            {"customer_name": f"c{i}", "price_plan_name": "basic", "start_time": "2026-01-01T00:00:00Z"}
            for i in range(count)
        ],
    })
    assert problems == []
    return catalog


def count_period_lookups(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    from services.aggregator import closing

    calls = [0]
    real = closing.period_at_index

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(closing, "period_at_index", counting)
    return calls


def test_a_tick_with_nothing_due_does_not_walk_the_subscriptions(monkeypatch: pytest.MonkeyPatch) -> None:
    h = Harness(many_customers_catalog(2_000))
    calls = count_period_lookups(monkeypatch)
    assert h.tick_at(utc(2026, 1, 20)) == []
    assert calls[0] == 2_000  # the schedule is built once
    calls[0] = 0
    for day in range(21, 32):
        assert h.tick_at(utc(2026, 1, day)) == []
    assert calls[0] == 0
    closed = h.tick_at(utc(2026, 2, 2))
    assert sorted(e[1] for e in closed) == [0] * 2_000
    # each closes one period and looks up the next one (twice: close loop, reschedule)
    calls[0] = 0
    assert h.tick_at(utc(2026, 2, 3)) == []
    assert calls[0] == 0


def test_a_subscription_added_after_the_first_tick_closes_on_time() -> None:
    catalog = make_catalog()
    h = Harness(catalog)
    assert h.tick_at(utc(2026, 1, 10)) == []
    extra, _ = parse_catalog({
        "customers": [{"name": "acme"}],
        "subscriptions": [{"customer_name": "acme", "price_plan_name": "basic", "start_time": "2026-03-01T00:00:00Z"}],
    })
    catalog.put(next(iter(extra.subscriptions.values())))
    closed = h.tick_at(utc(2026, 4, 2))
    assert [(e[1], e[2]) for e in closed] == [
        (0, utc(2026, 1, 1)), (1, utc(2026, 2, 1)), (2, utc(2026, 3, 1)), (0, utc(2026, 3, 1)),
    ]


def test_a_replaced_subscription_closes_by_its_new_end() -> None:
    catalog = make_catalog()
    h = Harness(catalog)
    assert h.tick_at(utc(2026, 1, 10)) == []
    ended = make_catalog(end_time="2026-01-15T00:00:00Z")
    catalog.put(ended.subscriptions[SUB])
    assert [(e[1], e[3]) for e in h.tick_at(utc(2026, 1, 16))] == [(0, utc(2026, 1, 15))]
    assert h.tick_at(utc(2026, 5, 1)) == []


def test_a_deleted_subscription_never_closes() -> None:
    catalog = make_catalog()
    h = Harness(catalog)
    assert h.tick_at(utc(2026, 1, 10)) == []
    catalog.delete("subscriptions", SUB)
    assert h.tick_at(utc(2026, 3, 1)) == []


def test_a_plan_period_change_reschedules_its_subscriptions() -> None:
    catalog = make_catalog()
    h = Harness(catalog)
    assert h.tick_at(utc(2026, 1, 10)) == []
    plan = catalog.price_plans["basic"].model_copy(update={"period": "quarterly"})
    catalog.put(plan)
    assert h.tick_at(utc(2026, 2, 2)) == []  # a monthly close would have come here
    assert [(e[1], e[3]) for e in h.tick_at(utc(2026, 4, 2))] == [(0, utc(2026, 4, 1))]


def test_late_marks_left_by_a_previous_owner_are_emitted_after_a_takeover() -> None:
    h = Harness(partitions=8)
    acme = customer_partition("acme", 8)
    h.usage(utc(2026, 1, 1), utc(2026, 2, 1), 5)
    # Written by the worker that owned the partition before: January closed, then late.
    h.closer.marks["acme"] = {"closed": {SUB: 1}, "late": [[SUB, 0]]}
    h.watermarks.observe(acme, utc(2026, 2, 10), utc(2026, 2, 10))
    others = {p for p in range(8) if p != acme}
    assert h.closer.tick(others, utc(2026, 2, 10)) == []
    events = h.closer.tick(others | {acme}, utc(2026, 2, 10))
    assert [(e.reason, e.period_index) for e in events] == [("late_usage", 0)]
    assert h.closer.tick(others | {acme}, utc(2026, 2, 10)) == []


def test_a_close_mark_recovered_ahead_of_the_schedule_is_respected() -> None:
    h = Harness()
    assert h.tick_at(utc(2026, 1, 10)) == []  # scheduled for February 1 + grace
    h.closer.marks["acme"] = {"closed": {SUB: 2}, "late": []}  # e.g. restored from the changelog
    assert h.tick_at(utc(2026, 2, 10)) == []
    assert h.tick_at(utc(2026, 3, 2)) == []  # March 1 closed period 1: already done
    assert [e[1] for e in h.tick_at(utc(2026, 4, 2))] == [2]
