"""shared.measurement_check's shortcuts give the model's answer: the remembered times, and
names that str.isprintable() does not pass but the model accepts.

The property tests in test_ingest_fast_path.py and test_aggregator_fast_decode.py hold
`check` to the model on random measurements; these pin the shapes the shortcuts branch on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from shared import measurement_check
from shared.measurement_check import check
from shared.models import Measurement

ITEM = {"id": "a", "meter_name": "api_calls", "customer_name": "acme", "value": 1}


def model_or_none(item: dict[str, Any]) -> Measurement | None:
    try:
        return Measurement.model_validate(item)
    except ValidationError:
        return None


@pytest.mark.parametrize("sent,expected_text", [
    ("2026-06-15T12:00:00Z", "2026-06-15T12:00:00Z"),
    ("2026-06-15T12:00:00.000001Z", "2026-06-15T12:00:00.000001Z"),
    ("2026-06-15T12:00:00.000000Z", None),  # the record writes no fraction then
])
def test_a_remembered_time_reads_as_it_did_the_first_time(sent: str, expected_text: str | None) -> None:
    measurement_check._TIMES.clear()
    first = check({**ITEM, "time": sent})
    assert sent in measurement_check._TIMES
    again = check({**ITEM, "id": "b", "time": sent})
    assert first is not None and again is not None
    assert (first.time, first.time_text) == (again.time, again.time_text)
    assert first.time_text == expected_text
    model = model_or_none({**ITEM, "time": sent})
    assert model is not None and first.time == model.time and first.time.tzinfo is not None


@pytest.mark.parametrize("sent", ["2026-02-30T00:00:00Z", "2026-06-15T24:00:00Z", "2026-06-15T12:00:60Z"])
def test_a_refused_time_of_the_record_shape_is_refused_every_time_and_not_remembered(sent: str) -> None:
    measurement_check._TIMES.clear()
    assert model_or_none({**ITEM, "time": sent}) is None
    assert check({**ITEM, "time": sent}) is None
    assert check({**ITEM, "time": sent}) is None
    assert sent not in measurement_check._TIMES


def test_other_spellings_of_a_time_are_read_by_the_model_validator_and_not_remembered() -> None:
    measurement_check._TIMES.clear()
    checked = check({**ITEM, "time": "2026-06-15T17:30:00+05:30"})
    assert checked is not None and checked.time == datetime(2026, 6, 15, 12, tzinfo=UTC)
    assert checked.time_text is None and measurement_check._TIMES == {}


def test_the_remembered_times_stay_bounded() -> None:
    measurement_check._TIMES.clear()
    for second in range(measurement_check._TIMES_KEPT + 10):
        at = f"2026-06-15T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z"
        checked = check({**ITEM, "time": at})
        assert checked is not None and checked.time_text == at
    assert 0 < len(measurement_check._TIMES) <= measurement_check._TIMES_KEPT


# Unprintable for str.isprintable(), yet not what the model refuses: the search decides.
@pytest.mark.parametrize("name", ["no\u00a0break", "zero\u200bwidth", "c1\x85control", "private\ue000use", "\u2028"])
@pytest.mark.parametrize("field", ["id", "meter_name", "customer_name", "label_key", "label_value"])
def test_names_that_are_unprintable_but_allowed_are_accepted_as_the_model_accepts_them(name: str, field: str) -> None:
    item: dict[str, Any] = dict(ITEM)
    if field == "label_key":
        item["labels"] = {name: "v"}
    elif field == "label_value":
        item["labels"] = {"k": name}
    else:
        item[field] = name
    model = model_or_none(item)
    checked = check(item)
    assert model is not None and checked is not None
    assert (checked.id, checked.meter_name, checked.customer_name, checked.labels) == (
        model.id, model.meter_name, model.customer_name, model.labels)


@pytest.mark.parametrize("name", ["tab\tbetween", "nul\x00", "del\x7f", "unit\x1f", "no\u00a0break\x01"])
def test_control_characters_are_refused_wherever_they_are(name: str) -> None:
    for item in ({**ITEM, "id": name}, {**ITEM, "customer_name": name}, {**ITEM, "labels": {"k": name}}):
        assert model_or_none(item) is None
        assert check(item) is None


@pytest.mark.parametrize("value", ["plain ascii", "ünï 😀", "\u00a0", "x" * 1024])
def test_string_values_without_surrogates_are_kept_as_sent(value: str) -> None:
    checked = check({**ITEM, "value": value})
    assert checked is not None and checked.value == value


def test_a_string_value_with_a_surrogate_is_refused() -> None:
    assert check({**ITEM, "value": "ok\ud800"}) is None
    assert check({**ITEM, "value": "\udfff"}) is None
