"""Folding facts into series state (semantics.md, Aggregation), idempotent under replay."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

import shared.folding as folding
from shared.folding import PeriodState, fold, from_units, series_state_from_json, to_units
from shared.models import Meter
from shared.timeline import Timeline, insert

D = Decimal
END = datetime(2026, 2, 1, tzinfo=UTC)


def empty_state() -> PeriodState:
    return PeriodState(END)


def quantity(state: PeriodState) -> Decimal:
    return state.value


def meter(aggregation: str, data_type: str = "FLOAT") -> Meter:
    return Meter.model_validate({"name": "m", "aggregation": aggregation, "data_type": data_type})


def folded(m: Meter, values: list[Any]) -> PeriodState:
    state = empty_state()
    for offset, value in enumerate(values):
        assert fold(state, m, value, offset) is True
    return state


def test_empty_state() -> None:
    assert (empty_state().value, empty_state().events, empty_state().applied) == (D(0), 0, -1)


def test_sum() -> None:
    state = folded(meter("SUM"), [D("1.5"), D("2.25"), D(-1), D("0.001")])
    assert quantity(state) == D("2.751")
    assert (state.events, state.applied) == (4, 3)


def test_sum_is_exact_with_many_digits() -> None:
    state = folded(meter("SUM"), [D("0.1")] * 10 + [D("12345678901234567890.000001")])
    assert quantity(state) == D("12345678901234567891.000001")


def test_count_ignores_values() -> None:
    assert quantity(folded(meter("COUNT"), [D(100), D(0), D(-5)])) == D(3)


def test_max() -> None:
    assert quantity(folded(meter("MAX"), [D(3), D(9), D(4)])) == D(9)
    # The first value is taken as is, even when below the initial "0".
    assert quantity(folded(meter("MAX"), [D(-7), D(-2), D(-5)])) == D(-2)


def test_min() -> None:
    assert quantity(folded(meter("MIN"), [D(3), D(9), D("2.5")])) == D("2.5")
    # The first value is taken as is, even when above the initial "0".
    assert quantity(folded(meter("MIN"), [D(8), D(6), D(7)])) == D(6)


def test_unique_count_of_strings() -> None:
    state = folded(meter("UNIQUE_COUNT", "STRING"), ["alice", "bob", "alice", "carol", "bob"])
    assert quantity(state) == D(3)
    assert sorted(state.uniques or ()) == ["alice", "bob", "carol"]
    assert state.events == 5


def test_unique_count_of_numbers_compares_values_not_spelling() -> None:
    state = folded(meter("UNIQUE_COUNT", "INT"), [D(5), D("5.0"), D("5E+0"), D(6), D("1E+2"), D(100)])
    assert quantity(state) == D(3)
    assert sorted(state.uniques or ()) == ["100", "5", "6"]


def test_values_may_arrive_as_text() -> None:
    assert quantity(folded(meter("SUM"), ["1.5", "2"])) == D("3.5")


@pytest.mark.parametrize("aggregation", ["SUM", "COUNT", "MAX", "MIN", "UNIQUE_COUNT"])
def test_replaying_an_applied_offset_is_a_no_op(aggregation: str) -> None:
    m = meter(aggregation)
    state = empty_state()
    assert fold(state, m, D(4), 10) is True
    assert fold(state, m, D(7), 11) is True
    before = copy.deepcopy(state)
    assert fold(state, m, D(7), 11) is False  # the same record again
    assert fold(state, m, D(9), 10) is False  # an older one
    assert state == before


def test_offsets_may_skip() -> None:
    state = empty_state()
    m = meter("SUM")
    assert fold(state, m, D(1), 5) is True
    assert fold(state, m, D(1), 100) is True
    assert (quantity(state), state.applied) == (D(2), 100)


@pytest.mark.parametrize("aggregation", ["SUM", "COUNT", "MAX", "MIN"])
def test_a_state_reads_back_what_it_wrote(aggregation: str) -> None:
    import json

    state = folded(meter(aggregation), [D("12345678901234567890123456.000000000001"), D("-0.5"), D("1E+3")])
    again = series_state_from_json("c\x1fm\x1f\x1f2026-01-01T00:00:00Z", json.loads(json.dumps(state.to_json())))
    assert again == state


def test_distinct_values_are_not_part_of_the_state_record() -> None:
    # The state log writes them apart, in records of bounded size (state_log.py).
    state = folded(meter("UNIQUE_COUNT", "STRING"), ["a", "b"])
    assert "a" not in str(state.to_json())


def test_a_state_written_before_states_were_typed_still_reads() -> None:
    legacy = {"value": "2.5", "events": 2, "applied": 7, "end": "2026-02-01T00:00:00Z"}
    state = series_state_from_json("c\x1fm\x1f\x1f2026-01-01T00:00:00Z", legacy)
    assert state == PeriodState(END, to_units(D("2.5")), 2, 7)
    timeline = series_state_from_json("c\x1fm\x1f\x1f*", {
        "points": [["2026-01-01T00:00:00.5Z", "3", False]], "base": ["2025-12-31T00:00:00Z", "1"], "applied": 4})
    assert isinstance(timeline, Timeline)
    assert timeline.to_json() == [[["2026-01-01T00:00:00.500000Z", "3", False]], ["2025-12-31T00:00:00Z", "1"], 4]


def test_a_timeline_reads_back_what_it_wrote() -> None:
    import json

    timeline = Timeline()
    insert(timeline, datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC), D("7.25"), True, 3)
    insert(timeline, datetime(2026, 1, 1, tzinfo=UTC), D(5), False, 4)
    again = series_state_from_json("c\x1fm\x1f\x1f*", json.loads(json.dumps(timeline.to_json())))
    assert again == timeline


def test_a_fold_that_raises_leaves_the_state_as_it_was() -> None:
    state = folded(meter("SUM"), [D(2)])
    before = copy.deepcopy(state)
    with pytest.raises(ArithmeticError):
        fold(state, meter("SUM"), "not a number", 5)
    assert state == before


def test_sum_keeps_all_38_digits_of_the_store() -> None:
    # 26 integer digits plus 12 fractional digits: more than Decimal's default 28.
    big = D("12345678901234567890123456")
    state = folded(meter("SUM"), [big, D("0.123456789012"), D("0.000000000001")])
    assert quantity(state) == D("12345678901234567890123456.123456789013")


@pytest.mark.parametrize("text", ["0", "-0.000000000001", "99999999999999999999999999.999999999999", "1E+25", "12.5"])
def test_units_hold_every_value_the_store_can_exactly(text: str) -> None:
    assert from_units(to_units(D(text))) == D(text)


def test_a_value_with_more_places_than_the_store_is_refused_not_rounded() -> None:
    with pytest.raises(ValueError, match="more than 12 decimal places"):
        to_units(D("0.0000000000001"))


def test_the_end_of_a_state_is_written_as_its_utc_instant_however_often_and_in_whatever_zone() -> None:
    end = datetime(2026, 4, 1, tzinfo=UTC)
    same_instant = end.astimezone(timezone(timedelta(hours=-5)))
    with_micros = end + timedelta(microseconds=5)
    for _ in range(2):  # written, then remembered
        assert PeriodState(end).to_json()[3] == "2026-04-01T00:00:00Z"
        assert PeriodState(same_instant).to_json()[3] == "2026-04-01T00:00:00Z"
        assert PeriodState(with_micros).to_json()[3] == "2026-04-01T00:00:00.000005Z"
    for days in range(folding._END_TEXTS_KEPT + 10):  # past the memo's size: it starts over
        later = end + timedelta(days=days)
        assert PeriodState(later).to_json()[3] == later.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(folding._END_TEXTS) <= folding._END_TEXTS_KEPT


@pytest.mark.parametrize("aggregation", ["SUM", "MAX", "MIN"])
def test_values_seen_again_fold_as_the_first_time_whatever_their_spelling(aggregation: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(folding, "_UNITS", {})
    values = [D("12.5"), D("12.50"), "12.5", D("1.25E+1"), D(-3), D("-3.000"), "-3", D("0.000000000001")]
    remembered = folded(meter(aggregation), values)
    monkeypatch.setattr(folding, "_UNITS_KEPT", 0)  # only the last value stays remembered
    assert folded(meter(aggregation), values).to_json() == remembered.to_json()


def test_a_value_with_too_many_places_is_refused_every_time_and_changes_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(folding, "_UNITS", {})
    state = folded(meter("SUM"), [D(1)])
    for attempt in range(2):
        with pytest.raises(ValueError, match="more than 12 decimal places"):
            fold(state, meter("SUM"), D("0.0000000000001"), 5 + attempt)
    assert (state.value, state.events, state.applied) == (D(1), 1, 0)


def test_the_remembered_units_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(folding, "_UNITS", {})
    folded(meter("SUM"), [D(n) for n in range(folding._UNITS_KEPT * 2 + 3)])
    assert len(folding._UNITS) <= folding._UNITS_KEPT
