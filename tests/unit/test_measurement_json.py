"""The ingest service's fast record encoder writes exactly what pydantic would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.models import Measurement
from shared.models.measurement import measurement_json

AT = datetime(2026, 3, 10, 12, 0, 1, 250000, tzinfo=UTC)


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
    at = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds, microseconds=micros)
    assert measurement_json(m, customer, at) == pydantic_bytes(m, customer, at)


@settings(max_examples=300, deadline=None)
@given(at=st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
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


def _reference_utc_datetime(value: Any) -> datetime:
    """json_types._utc_datetime before its fast path: the general checker, always."""
    from shared.models.json_types import _FORMATS, _in_utc

    if not isinstance(value, str):
        raise AssertionError("strings only here")
    if not _FORMATS.conforms(value, "date-time"):
        raise ValueError("is not a valid RFC 3339 date-time (e.g. 2026-01-01T00:00:00Z)")
    return _in_utc(datetime.fromisoformat(value.upper().removesuffix("\n")))


_INSTANT_PARTS = st.tuples(
    st.integers(0, 10000), st.integers(0, 13), st.integers(0, 32), st.integers(0, 24), st.integers(0, 60),
    st.integers(0, 60), st.sampled_from(["", ".5", ".123", ".123456", ".1234567", ".000000001"]),
    st.sampled_from(["Z", "z", "+00:00", "-08:00", "+05:30", "+23:59", "+24:00", "-00:60", ""]),
    st.sampled_from(["T", "t", " "]), st.sampled_from(["", "\n", " "]),
)


@settings(max_examples=2000, deadline=None)
@given(parts=_INSTANT_PARTS)
def test_the_date_time_fast_path_agrees_with_the_general_checker(parts: tuple[Any, ...]) -> None:
    from shared.models.json_types import _utc_datetime

    year, month, day, hour, minute, second, fraction, offset, separator, tail = parts
    text = f"{year:04d}-{month:02d}-{day:02d}{separator}{hour:02d}:{minute:02d}:{second:02d}{fraction}{offset}{tail}"
    try:
        expected: Any = _reference_utc_datetime(text)
    except (ValueError, OverflowError) as error:
        expected = type(error)
    try:
        actual: Any = _utc_datetime(text)
    except (ValueError, OverflowError) as error:
        actual = type(error)
    assert actual == expected, text
    if isinstance(actual, datetime):
        assert actual.utcoffset() == expected.utcoffset()
