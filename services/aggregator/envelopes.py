"""Measurement records: one measurement object, or an envelope (a JSON array of them).

Envelopes exist for throughput: Faust's per-record path costs ~218 µs of CPU whatever
the settings, so the ingest service packs the measurements of one partition and one
request chunk into one record. Kafka-native producers may write either form.

Decoding never raises: a record that is not readable at all is one problem for the whole
record; an unreadable item of an envelope is a problem for that item alone, and the rest
of the envelope is used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from shared.errors import field_errors
from shared.models import Measurement

_ENVELOPE = TypeAdapter(list[Measurement])
# Each bad item of an envelope becomes a dead letter of its own; a bound on the items keeps
# one hostile record (a megabyte of `{},`) from turning into 300,000 of them. The ingest
# service writes at most 1,000.
MAX_ENVELOPE_ITEMS = 10_000
TOO_MANY_ITEMS = f"value: an envelope holds at most {MAX_ENVELOPE_ITEMS:,} measurements"


@dataclass(frozen=True)
class Item:
    index: int | None  # position in the envelope; None for a single-object record
    measurement: Measurement | None
    problem: str | None  # why the item cannot be used (measurement is None then)


def _describe(error: ValidationError) -> str:
    return "; ".join(f"{field}: {reason}" for field, reason in field_errors(error))


def decode(value: bytes | None) -> list[Item] | str:
    """The items of a record, or why the record as a whole is unreadable."""
    if value is None:
        return "value: empty record (a measurement JSON object or array is required)"
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


def _items_one_by_one(value: bytes, error: ValidationError) -> list[Item] | str:
    """The slow path, for an envelope with at least one bad item."""
    if any(not e["loc"] or not isinstance(e["loc"][0], int) for e in error.errors()):
        return _describe(error)  # not JSON, or not an array
    raw = item_values(value)
    if raw is None:
        return _describe(error)
    if len(raw) > MAX_ENVELOPE_ITEMS:
        return TOO_MANY_ITEMS
    items = []
    for index, item in enumerate(raw):
        try:
            items.append(Item(index, Measurement.model_validate_json(item), None))
        except ValidationError as item_error:
            items.append(Item(index, None, _describe(item_error)))
    return items


def item_values(value: bytes) -> list[bytes] | None:
    """Each item of an envelope as JSON bytes of its own (for dead letters and forwarding)."""
    try:
        parsed: Any = json.loads(value)
    except (ValueError, RecursionError):
        return None
    if not isinstance(parsed, list):
        return None
    return [json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode() for item in parsed]
