"""Measurement: one usage event, as producers send it (semantics.md, Measurements)."""

from __future__ import annotations

import json
import json.encoder
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainSerializer,
    StrictBool,
    StrictStr,
    StringConstraints,
    model_validator,
)

from shared.models.base import ClosedModel
from shared.models.json_types import UtcDateTime
from shared.models.limits import MAX_ID_LENGTH, MAX_LABEL_LENGTH, MAX_LABELS, MAX_NAME_LENGTH, MAX_VALUE_LENGTH
from shared.money import decimal_text


def _number_or_string(value: Any) -> Decimal | str:
    if isinstance(value, bool):
        raise ValueError("must be a number (or a string for a STRING meter), not a boolean")
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("must be a finite number")
        return Decimal(repr(value))
    if isinstance(value, (int, Decimal)):
        return Decimal(value)
    if isinstance(value, str):
        # Bounded before anything parses it: Decimal() of a million digits is slow, and
        # a STRING meter keeps every distinct value in its series state.
        if len(value) > MAX_VALUE_LENGTH:
            raise ValueError(f"must be at most {MAX_VALUE_LENGTH} characters as a string")
        return value
    raise ValueError("must be a number (or a string for a STRING meter)")


def value_text(value: Decimal | str) -> str:
    # On the wire a numeric value travels as decimal text, so no digit is lost to a
    # float anywhere between the producer's request and ClickHouse.
    return value if isinstance(value, str) else decimal_text(value)


MeasurementValue = Annotated[
    Decimal | str,
    BeforeValidator(_number_or_string),
    PlainSerializer(value_text, when_used="json"),
]

_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f]")


def _no_control_characters(value: str) -> str:
    # Control characters have no business in names and labels, and \x1f is the
    # aggregator's key separator: refusing them keeps every key unambiguous.
    # (One regex scan in C: this runs for every id, name and label of every measurement.)
    if _CONTROL_CHARACTER.search(value) is not None:
        raise ValueError("must not contain control characters")
    return value


def _text(min_length: int, max_length: int) -> StringConstraints:
    return StringConstraints(min_length=min_length, max_length=max_length)


# The length constraint sits on the string itself, before the control-character check:
# checked after a validator, pydantic would report it in "items" instead of characters.
Id = Annotated[StrictStr, _text(1, MAX_ID_LENGTH), AfterValidator(_no_control_characters)]
Name = Annotated[StrictStr, _text(1, MAX_NAME_LENGTH), AfterValidator(_no_control_characters)]
LabelKey = Annotated[StrictStr, _text(1, MAX_LABEL_LENGTH), AfterValidator(_no_control_characters)]
LabelValue = Annotated[StrictStr, _text(0, MAX_LABEL_LENGTH), AfterValidator(_no_control_characters)]


class Measurement(ClosedModel):
    id: Id
    meter_name: Name | None = None
    event_name: Name | None = None
    customer_name: Name | None = None
    value: MeasurementValue
    time: UtcDateTime | None = None
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=MAX_LABELS)
    reset_total: StrictBool = False

    @model_validator(mode="after")
    def _names_a_meter(self) -> Measurement:
        if self.meter_name is None and self.event_name is None:
            raise ValueError("meter_name: either meter_name or event_name is required")
        return self


def measurement_json(measurement: Measurement, customer_name: str, at: datetime) -> bytes:
    """`measurement` with `customer_name` and `time` set, as `model_dump_json(exclude_none=True)`.

    The same bytes (field order, None fields left out, value as decimal text, time as
    RFC 3339 UTC, compact separators, non-ASCII as UTF-8, json's string escapes, which
    are pydantic's) without building a model copy: the ingest service writes one per
    accepted measurement. tests/unit/test_measurement_json.py holds it to pydantic's output.
    Raises ValueError (UnicodeEncodeError) for a lone surrogate, which UTF-8 cannot hold.
    """
    return record_json(
        measurement.id, measurement.meter_name, measurement.event_name, customer_name,
        value_text(measurement.value), record_time_text(at), measurement.labels, measurement.reset_total,
    )


def record_json(
    id_: str, meter_name: str | None, event_name: str | None, customer_name: str, value: str, time: str,
    labels: dict[str, str], reset_total: bool,
) -> bytes:
    """A measurement record's bytes from its fields: `measurement_json` without a model.

    `value` and `time` are texts, as `value_text` and `record_time_text` write them.
    """
    names = "" if meter_name is None else ',"meter_name":' + _quote(meter_name)
    if event_name is not None:
        names += ',"event_name":' + _quote(event_name)
    pairs = ",".join(_quote(k) + ":" + _quote(v) for k, v in labels.items()) if labels else ""
    flag = "true" if reset_total else "false"
    return (
        f'{{"id":{_quote(id_)}{names},"customer_name":{_quote(customer_name)},"value":{_quote(value)},'
        f'"time":{_quote(time)},"labels":{{{pairs}}},"reset_total":{flag}}}'
    ).encode()


def utc_text(value: datetime) -> str:
    """Exactly json_types.format_utc (RFC 3339 in UTC, Z, microseconds only when present).

    Built with f-strings instead of strftime: the pipeline formats an instant per record.
    Raises OverflowError where format_utc does (an instant outside UTC's range).
    """
    v = value if value.tzinfo is UTC else value.astimezone(UTC)
    # isoformat() (in C) writes exactly this for a UTC instant: 4-digit year, microseconds
    # only when present, then "+00:00", which becomes "Z".
    return v.isoformat()[:-6] + "Z"


def record_time_text(value: datetime) -> str:
    """A record's `time` text, as json_types._iso_utc writes it: utc_text, or the instant
    with its own offset outside UTC's range."""
    try:
        return utc_text(value)
    except OverflowError:
        return value.isoformat()


# The string encoder json.dumps(ensure_ascii=False) uses (its C version where available).
_quote = json.encoder.encode_basestring
