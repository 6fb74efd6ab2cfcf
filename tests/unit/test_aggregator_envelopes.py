"""services.aggregator.envelopes.decode: every record gives items or one reason, never raises."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from services.aggregator.batches import slices
from services.aggregator.envelopes import MAX_ENVELOPE_ITEMS, TOO_MANY_ITEMS, decode, item_values
from services.aggregator.processing import Record

GOOD = {"id": "a", "meter_name": "m", "customer_name": "c", "value": 1}


def test_one_object_is_one_item_without_an_index() -> None:
    [item] = decode(json.dumps(GOOD).encode())  # type: ignore[misc]
    assert item.index is None and item.checked is not None and item.problem is None


def test_an_envelope_gives_its_items_in_order_and_a_bad_one_alone() -> None:
    items = decode(json.dumps([GOOD, {**GOOD, "id": 5}, {**GOOD, "id": "c"}]).encode())
    assert not isinstance(items, str)
    assert [(i.index, i.problem is None) for i in items] == [(0, True), (1, False), (2, True)]
    assert items[1].problem == "id: Input should be a valid string"


def test_an_envelope_at_the_item_bound_is_read() -> None:
    items = decode(json.dumps([{**GOOD, "id": str(i)} for i in range(MAX_ENVELOPE_ITEMS)]).encode())
    assert not isinstance(items, str) and len(items) == MAX_ENVELOPE_ITEMS


@pytest.mark.parametrize("item", [GOOD, {}, 1])
def test_an_envelope_over_the_item_bound_is_one_problem(item: object) -> None:
    # valid or not, one reason for the record: never 300,000 dead letters from one record
    assert decode(json.dumps([item] * (MAX_ENVELOPE_ITEMS + 1)).encode()) == TOO_MANY_ITEMS


@pytest.mark.parametrize("value", [
    b"[" * 100_000 + b"]" * 100_000, b"{" * 100_000, b"\xff\xfe", b"", b"5", b"null", b'"x"', b"{not json",
])
def test_unreadable_records_are_one_problem(value: bytes) -> None:
    assert isinstance(decode(value), str)


def test_an_empty_record_says_so() -> None:
    assert decode(None) == "value: empty record (a measurement JSON object or array is required)"


def test_an_empty_envelope_has_no_items() -> None:
    assert decode(b"[]") == []


def test_a_number_past_pythons_digit_limit_spoils_only_its_item() -> None:
    # json.loads refuses ints over 4,300 digits: the whole envelope used to be one dead
    # letter, its valid items with it (found by tests/e2e/test_kafka_fuzz.py).
    value = b'[' + json.dumps(GOOD).encode() + b', {"id": "b", "meter_name": "m", "value": ' + b"7" * 5000 + b"}]"
    items = decode(value)
    assert not isinstance(items, str)
    assert [i.problem is None for i in items] == [True, False]


@pytest.mark.parametrize("value,spans", [
    (b"[]", []), (b" [ ] ", []), (b'[1, "a" ,{"x": [1]}]', [b"1", b'"a"', b'{"x": [1]}']),
    (b"[1,]", None), (b"[1 2]", None), (b"[", None), (b"[1] x", None), (b"{}", None), (b"\xff[", None),
    (b"[" + b"7" * 5000 + b"]", [b"7" * 5000]),
])
def test_item_values_are_the_exact_spans_written(value: bytes, spans: list[bytes] | None) -> None:
    assert item_values(value) == spans


@pytest.mark.parametrize("value", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000])
def test_logging_a_deeply_nested_dead_letter_does_not_raise(value: bytes) -> None:
    # Issue 13, finding 1: the dead-letter log helper raised RecursionError on 100,000
    # nested brackets, the worker exited and read the record again: a restart loop.
    # End to end: tests/e2e/test_kafka_fuzz.py (deep nesting, dead-lettered exactly once).
    from services.aggregator.batches import _measurement_id

    assert isinstance(decode(value), str)
    assert _measurement_id(value) is None


def test_a_batch_is_handled_in_slices_of_bounded_bytes_in_order() -> None:
    def record(offset: int, size: int) -> Record:
        return Record("m", 0, offset, None, b"x" * size, datetime(2026, 1, 1, tzinfo=UTC))

    records = [record(0, 600), record(1, 600), record(2, 5000), record(3, 100), record(4, 0)]
    runs = list(slices(records, 1000))
    assert [[r.offset for r in run] for run in runs] == [[0], [1], [2], [3, 4]]
    assert list(slices([], 1000)) == []
