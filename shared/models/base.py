"""Model bases: seed shapes keep unknown fields (the seed schemas allow them)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError


class SeedModel(BaseModel):
    """A shape from the seed JSON Schemas: open to extra fields, as the schemas are.

    Optional fields are typed `X | None` so that an absent field reads as None, but
    JSON Schema rejects an explicit `null` for a `string`/`number` property, so a
    present null is refused here unless the field is listed in `nullable_fields`.
    """

    model_config = ConfigDict(extra="allow")
    nullable_fields: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _reject_explicit_nulls(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            if isinstance(data, BaseModel):
                return data
            raise PydanticCustomError("object_type", "must be a JSON object")
        for name in cls.model_fields:
            if name in data and data[name] is None and name not in cls.nullable_fields:
                raise PydanticCustomError(
                    "null_not_allowed", "{field}: must not be null", {"field": name}
                )
        return data


class ClosedModel(BaseModel):
    """A shape of our own: unknown fields are an error, so typos are caught."""

    model_config = ConfigDict(extra="forbid", frozen=True)
