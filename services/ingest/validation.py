"""Judging a request body: every problem of every measurement, by index and field."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from shared.catalog import Catalog
from shared.errors import field_errors
from shared.models import Measurement
from shared.resolution import Fact, Limits, SubscriptionAt, resolve


@dataclass(frozen=True)
class FieldError:
    index: int | None
    field: str
    reason: str

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "reason": self.reason}
        if self.index is not None:
            out = {"index": self.index, **out}
        return out


def parse_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BodyError(f"body is not valid JSON: {error}") from error


class BodyError(Exception):
    pass


def parse_measurement(raw: Any, index: int | None) -> tuple[Measurement | None, list[FieldError]]:
    try:
        return Measurement.model_validate(raw), []
    except ValidationError as error:
        return None, [FieldError(index, field, reason) for field, reason in field_errors(error)]


def judge(
    measurements: list[Measurement], catalog: Catalog, received_at: datetime, limits: Limits, offset: int = 0,
    subscription_at: SubscriptionAt | None = None,
) -> tuple[list[list[Fact]], list[FieldError]]:
    all_facts: list[list[Fact]] = []
    errors: list[FieldError] = []
    for index, measurement in enumerate(measurements):
        facts, problems = resolve(measurement, catalog, received_at, limits, subscription_at)
        all_facts.append(facts)
        errors.extend(FieldError(index + offset, field, reason) for field, reason in problems)
    return all_facts, errors
