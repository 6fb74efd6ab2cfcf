"""Measurement: one usage event, as producers send it (semantics.md, Measurements)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, StrictBool, StrictStr, model_validator

from shared.models.base import ClosedModel
from shared.models.json_types import UtcDateTime
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
        return value
    raise ValueError("must be a number (or a string for a STRING meter)")


def _value_out(value: Decimal | str) -> str:
    # On the wire a numeric value travels as decimal text, so no digit is lost to a
    # float anywhere between the producer's request and ClickHouse.
    return value if isinstance(value, str) else decimal_text(value)


MeasurementValue = Annotated[
    Decimal | str,
    BeforeValidator(_number_or_string),
    PlainSerializer(_value_out, when_used="json"),
]

def _no_control_characters(value: str) -> str:
    # Control characters have no business in names and labels, and \x1f is the
    # aggregator's key separator: refusing them keeps every key unambiguous.
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("must not contain control characters")
    return value


Text = Annotated[StrictStr, AfterValidator(_no_control_characters)]

MAX_ID_LENGTH = 256
MAX_LABELS = 32
MAX_LABEL_LENGTH = 256


class Measurement(ClosedModel):
    id: Text = Field(min_length=1, max_length=MAX_ID_LENGTH)
    meter_name: Text | None = Field(default=None, min_length=1)
    event_name: Text | None = Field(default=None, min_length=1)
    customer_name: Text | None = Field(default=None, min_length=1)
    value: MeasurementValue
    time: UtcDateTime | None = None
    labels: dict[
        Annotated[Text, Field(min_length=1, max_length=MAX_LABEL_LENGTH)],
        Annotated[Text, Field(max_length=MAX_LABEL_LENGTH)],
    ] = Field(default_factory=dict, max_length=MAX_LABELS)
    reset_total: StrictBool = False

    @model_validator(mode="after")
    def _names_a_meter(self) -> "Measurement":
        if self.meter_name is None and self.event_name is None:
            raise ValueError("meter_name: either meter_name or event_name is required")
        return self
