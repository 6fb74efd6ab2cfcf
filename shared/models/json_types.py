"""Field types that accept exactly what a draft-07 JSON Schema accepts.

The catalog shapes must agree with the seed JSON Schemas case by case, so pydantic's
lax coercions ("1.5" -> Decimal, 1 -> "1", naive datetimes) are switched off here:
a JSON `number` is an int or float (never a bool or a string), a `string` is a str,
and `format` checks reuse the very checkers of jsonschema's draft-07 FormatChecker.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from jsonschema import Draft7Validator
from pydantic import BeforeValidator, PlainSerializer, StrictBool, StrictStr, WithJsonSchema

# The checker the seed schemas are validated with (draft-07), not FormatChecker()'s
# union of every draft's formats.
_FORMATS = Draft7Validator.FORMAT_CHECKER


def _json_number(value: Any) -> Decimal:
    # bool is an int subclass in Python but not a JSON number.
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ValueError("must be a JSON number")
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("must be a finite number")
        # repr() is the shortest string that round-trips, so 0.001 stays 0.001.
        return Decimal(repr(value))
    return Decimal(value)


def _json_integer(value: Any) -> int:
    # Draft-07 counts 3.0 as an integer; jsonschema agrees.
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ValueError("must be a JSON integer")
    if isinstance(value, int):
        return value
    if value != value or value in (float("inf"), float("-inf")) or value != int(value):
        raise ValueError("must be a whole number")
    return int(value)


def _checked_format(fmt: str) -> Any:
    def check(value: Any) -> Any:
        if isinstance(value, str) and not _FORMATS.conforms(value, fmt):
            raise ValueError(f"is not a valid {fmt}")
        return value

    return check


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # A valid RFC 3339 instant such as 0001-01-01T00:00:00+01:00 lies outside
        # Python's datetime range once moved to UTC. The schema accepts it, so do we:
        # it keeps its own offset (still aware, still comparable with UTC values).
        return value


# jsonschema's RFC 3339 pattern (rfc3339_validator.RFC3339_REGEX) in its everyday
# spelling: upper-case T and Z, nothing after the offset.
_PLAIN_RFC3339 = re.compile(
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)


def _utc_datetime(value: Any) -> datetime:
    if isinstance(value, str) and _PLAIN_RFC3339.fullmatch(value) is not None:
        # Every measurement carries one: skip the general checker when the text has
        # the checker's own shape. What the checker still tests (day within month,
        # year not 0) fromisoformat refuses too; then the path below says why.
        try:
            return _in_utc(datetime.fromisoformat(value))
        except ValueError:
            pass
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("must carry a timezone (RFC 3339)")
        return _in_utc(value)
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string")
    # jsonschema's checker (rfc3339_validator) rejects a leap second (":60") and
    # year 0, so everything it accepts is a Python datetime, with one quirk: its
    # regex ends in `$`, which also matches before a single final newline.
    if not _FORMATS.conforms(value, "date-time"):
        raise ValueError("is not a valid RFC 3339 date-time (e.g. 2026-01-01T00:00:00Z)")
    text = value.upper().removesuffix("\n")
    return _in_utc(datetime.fromisoformat(text))


# UtcDateTime's validator, for code that checks a field without building a model.
utc_datetime = _utc_datetime


def _iso_utc(value: datetime) -> str:
    try:
        return format_utc(value)
    except OverflowError:
        # Not representable in UTC (see _in_utc): RFC 3339 with its own offset.
        return value.isoformat()


def format_utc(value: datetime) -> str:
    """RFC 3339 in UTC with a Z suffix; microseconds only when present."""
    value = value.astimezone(UTC)
    # strftime's %Y is not zero-padded below year 1000 (glibc); RFC 3339 wants 4 digits.
    text = f"{value.year:04d}" + value.strftime("-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return text + "Z"


def _number_out(value: Decimal) -> int | float:
    # JSON numbers out, as the seed schemas type them. Catalog numbers arrive as JSON
    # numbers (floats at most), so the shortest float repr gives back the same text.
    if value == value.to_integral_value():
        return int(value)
    return float(value)


JsonNumber = Annotated[
    Decimal, BeforeValidator(_json_number), PlainSerializer(_number_out, when_used="json")
]
JsonInteger = Annotated[int, BeforeValidator(_json_integer)]
JsonString = StrictStr
JsonBool = StrictBool
UtcDateTime = Annotated[
    datetime, BeforeValidator(_utc_datetime), PlainSerializer(_iso_utc, return_type=str, when_used="json")
]
# WithJsonSchema only documents (e.g. the HTTP API's OpenAPI request bodies): the format
# is checked by the validator, as the seed schema says.
EmailString = Annotated[
    StrictStr, BeforeValidator(_checked_format("email")), WithJsonSchema({"type": "string", "format": "email"})
]
UriString = Annotated[
    StrictStr, BeforeValidator(_checked_format("uri")), WithJsonSchema({"type": "string", "format": "uri"})
]
JsonObject = dict[str, Any]


def _require_json_object(value: Any) -> Any:
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object")
    return value


StrictObject = Annotated[JsonObject, BeforeValidator(_require_json_object)]


def _require_json_array(value: Any) -> Any:
    if not isinstance(value, list):
        raise ValueError("must be a JSON array")
    return value


ArrayOf = BeforeValidator(_require_json_array)
