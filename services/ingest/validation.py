"""Judging a request body: every problem of every measurement, by index and field."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from services.infra.web import Problem
from shared.catalog import Catalog
from shared.errors import field_errors
from shared.models import Measurement
from shared.resolution import Fact, Limits, resolve


@dataclass(frozen=True)
class FieldError:
    index: int | None
    field: str
    reason: str

    def as_json(self) -> Problem:
        if self.index is None:
            return {"field": self.field, "reason": self.reason}
        return {"index": self.index, "field": self.field, "reason": self.reason}


def parse_body(body: bytes, *, allow_constants: bool = True) -> Any:
    """The body as JSON, or BodyError saying why not; no other exception escapes.

    `allow_constants=False` refuses NaN and Infinity, which Python's json accepts and
    JSON does not (the measurement model refuses them as values with a field error).
    """
    try:
        if allow_constants:
            return json.loads(body)
        return json.loads(body, parse_constant=_reject_constant)
    except RecursionError as error:
        # json's C scanner recurses per array/object: thousands of '[' exhaust the stack.
        raise BodyError("body is not valid JSON: it is nested too deeply") from error
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BodyError(f"body is not valid JSON: {error}") from error
    except ValueError as error:
        # The only other ValueError json.loads raises: an integer literal longer than
        # int() converts (sys.get_int_max_str_digits(), 4300 by default).
        limit = sys.get_int_max_str_digits()
        raise BodyError(f"body is not valid JSON: a number has more than {limit} digits") from error


def _reject_constant(name: str) -> Any:
    raise BodyError(f"body is not valid JSON: {name} is not a JSON value")


def too_deep(value: Any, max_depth: int) -> bool:
    """Whether `value` nests arrays and objects more than `max_depth` levels deep.

    Iterative, so a deep value cannot exhaust the stack while it is being measured.
    """
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > max_depth:
            return True
        pending.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


class BodyError(Exception):
    pass


def parse_measurement(raw: Any, index: int | None) -> tuple[Measurement | None, list[FieldError]]:
    try:
        return Measurement.model_validate(raw), []
    except ValidationError as error:
        return None, [FieldError(index, field, reason) for field, reason in field_errors(error)]


def judge(
    measurements: list[Measurement], catalog: Catalog, received_at: datetime, limits: Limits,
) -> tuple[list[list[Fact]], list[FieldError]]:
    all_facts: list[list[Fact]] = []
    errors: list[FieldError] = []
    for index, measurement in enumerate(measurements):
        facts, problems = resolve(measurement, catalog, received_at, limits)
        all_facts.append(facts)
        errors.extend(FieldError(index, field, reason) for field, reason in problems)
    return all_facts, errors


def oversized(records: list[tuple[bytes, bytes]], measurements: list[Measurement], limit: int) -> list[FieldError]:
    """An error for each record over `limit` bytes (key + value), naming its largest field.

    The model's length limits keep a measurement far below Kafka's record limit; this is
    the last check before producing, so no batch is ever cut short by the broker.
    """
    errors = []
    for index, ((key, value), measurement) in enumerate(zip(records, measurements, strict=True)):
        size = len(key) + len(value)
        if size > limit:
            reason = f"makes a record of {size} bytes; a record holds at most {limit} bytes"
            errors.append(FieldError(index, largest_field(measurement), reason))
    return errors


def largest_field(measurement: Measurement) -> str:
    """The field holding the most characters: what to shorten to make the record fit."""
    sizes = {
        "id": len(measurement.id),
        "meter_name": len(measurement.meter_name or ""),
        "event_name": len(measurement.event_name or ""),
        "customer_name": len(measurement.customer_name or ""),
        "value": len(measurement.value) if isinstance(measurement.value, str) else 0,
        "labels": sum(len(k) + len(v) for k, v in measurement.labels.items()),
    }
    return max(sizes, key=lambda field: sizes[field])
