"""Measurement records: one measurement object, or an envelope (a JSON array of them).

Envelopes exist for throughput: Faust's per-record path costs ~218 µs of CPU whatever
the settings, so the ingest service packs the measurements of one partition and one
request chunk into one record. Kafka-native producers may write either form.

Decoding never raises: a record that is not readable at all is one problem for the whole
record; an unreadable item of an envelope is a problem for that item alone, and the rest
of the envelope is used.

Two paths, one verdict. The fast one reads the record with
`shared.measurement_check.check_json` (msgspec: about 1 µs a measurement), or, for what
msgspec refuses, with `json.loads` and `check` (about 3 µs, against about 35 for the
model); it gives up on the whole record at the first item the check does not accept, and
the model path below then decides and words every item, as it always has.
tests/unit/test_aggregator_envelopes.py holds the two to the same items.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pydantic import TypeAdapter, ValidationError

from shared.errors import field_errors
from shared.measurement_check import Checked, check, check_json
from shared.models import Measurement

_ENVELOPE = TypeAdapter(list[Measurement])
# Each bad item of an envelope becomes a dead letter of its own; a bound on the items keeps
# one hostile record (a megabyte of `{},`) from turning into 300,000 of them. The ingest
# service writes at most 1,000.
MAX_ENVELOPE_ITEMS = 10_000
TOO_MANY_ITEMS = f"value: an envelope holds at most {MAX_ENVELOPE_ITEMS:,} measurements"


@dataclass(slots=True)  # made once per measurement: slots, and not frozen (cheaper to build)
class Item:
    index: int | None  # position in the envelope; None for a single-object record
    measurement: Measurement | None  # from the model path
    problem: str | None  # why the item cannot be used (measurement and checked are None then)
    checked: Checked | None = None  # from the fast path, instead of a model


def _describe(error: ValidationError) -> str:
    return "; ".join(f"{field}: {reason}" for field, reason in field_errors(error))


def decode(value: bytes | None) -> list[Item] | str:
    """The items of a record, or why the record as a whole is unreadable."""
    if value is None:
        return "value: empty record (a measurement JSON object or array is required)"
    fast = _checked_items(value)
    if fast is not None:
        return fast
    if value.lstrip()[:1] != b"[":
        try:
            return [Item(None, Measurement.model_validate_json(value), None)]
        except ValidationError as error:
            return _describe(error)
    try:
        measurements = _ENVELOPE.validate_json(value)
    except ValidationError as error:
        return _items_one_by_one(value, error)
    if len(measurements) > MAX_ENVELOPE_ITEMS:
        return TOO_MANY_ITEMS
    return [Item(i, m, None) for i, m in enumerate(measurements)]


def _checked_items(value: bytes) -> list[Item] | None:
    """Every item of the record, if the fast check accepts every one; else None."""
    checked = check_json(value)
    if isinstance(checked, list):
        if len(checked) > MAX_ENVELOPE_ITEMS:
            return None
        return [Item(index, None, None, each) for index, each in enumerate(checked)]
    if checked is not None:
        return [Item(None, None, None, checked)]
    try:
        # UTF-8 explicitly: json.loads would also take UTF-16 and UTF-32 bytes, which the
        # model path refuses.
        raw = json.loads(value.decode())
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None
    if type(raw) is dict:
        checked = check(raw)
        return None if checked is None else [Item(None, None, None, checked)]
    if type(raw) is not list or len(raw) > MAX_ENVELOPE_ITEMS:
        return None
    items = []
    for index, each in enumerate(raw):
        checked = check(each)
        if checked is None:
            return None
        items.append(Item(index, None, None, checked))
    return items


def _items_one_by_one(value: bytes, error: ValidationError) -> list[Item] | str:
    """The slow path, for an envelope with at least one bad item (or one pydantic's JSON
    parser refuses outright, such as a number of 5,000 digits: then each item is judged
    on its own, and only the one holding it is lost)."""
    raw = item_values(value)
    if raw is None:
        return _describe(error)  # not JSON, or not an array
    if len(raw) > MAX_ENVELOPE_ITEMS:
        return TOO_MANY_ITEMS
    items = []
    for index, item in enumerate(raw):
        try:
            items.append(Item(index, Measurement.model_validate_json(item), None))
        except ValidationError as item_error:
            items.append(Item(index, None, _describe(item_error)))
    return items


# Spans only: numbers stay text, so a 5,000-digit number (past Python's 4,300-digit int
# conversion limit) is just a bad item, not a reason to give up on the whole envelope.
_SPANS = json.JSONDecoder(parse_int=str, parse_float=str, parse_constant=str)
_BLANK = re.compile(r"[ \t\n\r]*")


def item_values(value: bytes) -> list[bytes] | None:
    """Each item of an envelope as the exact bytes it was written with (for dead letters
    and forwarding), or None when the record is not a readable JSON array."""
    try:
        text = value.decode()
    except UnicodeDecodeError:
        return None
    at = _skip_blank(text, 0)
    if text[at:at + 1] != "[":
        return None
    at = _skip_blank(text, at + 1)
    items: list[bytes] = []
    while text[at:at + 1] != "]" or items:
        try:
            _, end = _SPANS.raw_decode(text, at)
        except (ValueError, RecursionError):
            return None
        items.append(text[at:end].encode())
        at = _skip_blank(text, end)
        if text[at:at + 1] == "]":
            break
        if len(items) > MAX_ENVELOPE_ITEMS:
            return items  # enough to say it is too many; the caller refuses the record
        if text[at:at + 1] != ",":
            return None
        at = _skip_blank(text, at + 1)
    return items if _skip_blank(text, at + 1) == len(text) else None


def _skip_blank(text: str, at: int) -> int:
    match = _BLANK.match(text, at)
    return match.end() if match is not None else at
