"""The ingest service's fast record encoder writes exactly what pydantic would."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from shared.models import Measurement
from shared.models.measurement import measurement_json

AT = datetime(2026, 3, 10, 12, 0, 1, 250000, tzinfo=timezone.utc)


def pydantic_bytes(m: Measurement, customer: str, at: datetime) -> bytes:
    return m.model_copy(update={"customer_name": customer, "time": at}).model_dump_json(exclude_none=True).encode()


@pytest.mark.parametrize("document", [
    {"id": "e1", "meter_name": "api_calls", "customer_name": "acme", "value": 3},
    {"id": "e2", "event_name": "request", "value": "1.50", "labels": {"region": "eu", "tier": "gold"}},
    {"id": "e3", "meter_name": "users", "value": "u-ü-\u2028-\"q\"-\\", "reset_total": True},
    {"id": "e4", "meter_name": "m", "event_name": "ev", "value": 1e-7, "time": "2026-03-10T13:00:00+01:00"},
    {"id": "e5", "meter_name": "m", "value": 12345678901234567890123456, "labels": {}},
    {"id": "ünïcødé/😀", "meter_name": "m", "value": -0.0, "labels": {"k": "v\u00a0"}},
    {"id": "e7", "meter_name": "m", "value": "line\nbreak\ttab\u0001"},
])
def test_same_bytes_as_pydantic(document: dict[str, Any]) -> None:
    m = Measurement.model_validate(document)
    at = m.time or AT
    assert measurement_json(m, "resolved", at) == pydantic_bytes(m, "resolved", at)


def test_instants_outside_utc_range_fall_back_like_pydantic() -> None:
    m = Measurement.model_validate({"id": "e", "meter_name": "m", "value": 1, "time": "0001-01-01T00:00:00+01:00"})
    assert m.time is not None
    assert measurement_json(m, "c", m.time) == pydantic_bytes(m, "c", m.time)


printable = st.text(st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(
    id_=printable, customer=printable, labels=st.dictionaries(printable, st.text(max_size=10), max_size=3),
    value=st.one_of(st.integers(), st.decimals(allow_nan=False, allow_infinity=False), st.text(max_size=10)),
    seconds=st.integers(min_value=0, max_value=10**8), micros=st.integers(min_value=0, max_value=999999),
    reset=st.booleans(), event=st.one_of(st.none(), printable),
)
def test_same_bytes_for_any_measurement(
    id_: str, customer: str, labels: dict[str, str], value: int | Decimal | str, seconds: int, micros: int,
    reset: bool, event: str | None,
) -> None:
    document: dict[str, Any] = {"id": id_, "meter_name": "m", "value": value, "labels": labels, "reset_total": reset}
    if event is not None:
        document["event_name"] = event
    try:
        m = Measurement.model_validate(document)
    except ValueError:
        return  # not a measurement: never encoded
    at = datetime(2020, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=seconds, microseconds=micros)
    assert measurement_json(m, customer, at) == pydantic_bytes(m, customer, at)


@settings(max_examples=300, deadline=None)
@given(at=st.datetimes(timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=5, minutes=30)),
                                                   timezone(timedelta(hours=-8))])))
def test_utc_text_is_format_utc(at: datetime) -> None:
    from shared.models.json_types import format_utc
    from shared.models.measurement import utc_text

    try:
        expected = format_utc(at)
    except OverflowError:
        with pytest.raises(OverflowError):
            utc_text(at)
        return
    assert utc_text(at) == expected
