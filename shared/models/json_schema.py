"""JSON Schemas of the catalog models as they validate, for people and other tools.

`docs/schemas/*.schema.json` are generated from here (`make schemas`, i.e.
`python scripts/generate_schemas.py`) and a test keeps them current. They are draft-07,
like the seed schemas they follow, and say what the models enforce, not what pydantic
would guess from the Python types: a catalog decimal is a JSON number (never a string),
an optional field of a seed shape rejects an explicit null unless it is nullable
(`PriceTier.cap`, written as `anyOf: [number, null]`), and bounds keep their draft-07
names (`minimum`, not pydantic's `ge`).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from shared.models.base import SeedModel
from shared.models.customer import Customer
from shared.models.limits import MAX_NAME_LENGTH
from shared.models.price_plan import PricePlan

DRAFT_07 = "http://json-schema.org/draft-07/schema#"

# File name -> (model, description). The descriptions are ours: what the schema is and
# where it differs from the seed it follows.
SCHEMA_FILES: dict[str, tuple[type[BaseModel], str]] = {
    "customer.schema.json": (
        Customer,
        "A customer of the metering pipeline: the seed Customer schema (Octane's), with `name` "
        f"at most {MAX_NAME_LENGTH} characters. Generated from shared.models.Customer by "
        "`make schemas`; do not edit.",
    ),
    "price_plan.schema.json": (
        PricePlan,
        "A price plan of the metering pipeline: the seed PricePlan schema (Octane's), with `name` "
        f"at most {MAX_NAME_LENGTH} characters and `cap: null` (no upper bound) allowed on a price "
        "tier. Generated from shared.models.PricePlan by `make schemas`; do not edit.",
    ),
}

# pydantic keeps its own names for bounds on a validator-wrapped number.
_BOUNDS = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum"}


class SeedExactSchema(GenerateJsonSchema):
    """pydantic's schema generator, corrected to what the seed models accept."""

    def decimal_schema(self, schema: core_schema.DecimalSchema) -> JsonSchemaValue:
        return {"type": "number"}  # JsonNumber takes JSON numbers only

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False  # "Display Name" for display_name says nothing the key does not

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        json_schema = super().model_schema(schema)
        cls = schema["cls"]
        if issubclass(cls, SeedModel):
            for name, prop in json_schema.get("properties", {}).items():
                if name in cls.nullable_fields or "anyOf" not in prop:
                    continue
                # `X | None` in Python means "may be absent", not "may be null".
                options = [option for option in prop["anyOf"] if option != {"type": "null"}]
                del prop["anyOf"]
                prop.pop("default", None)
                if len(options) == 1:
                    prop.update(options[0])
                else:
                    prop["anyOf"] = options
        return json_schema


def _draft_07(node: Any) -> Any:
    """Bounds by their draft-07 names, and `$defs` (2020-12) as `definitions` (draft-07)."""
    if isinstance(node, list):
        return [_draft_07(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if node.get("type") == "number":
            key = _BOUNDS.get(key, key)
        out["definitions" if key == "$defs" else key] = _draft_07(value)
    return out


def model_schema(model: type[BaseModel], description: str) -> dict[str, Any]:
    generated = model.model_json_schema(schema_generator=SeedExactSchema, ref_template="#/definitions/{model}")
    body = _draft_07(generated)
    definitions = body.pop("definitions", None)
    body.pop("description", None)  # pydantic's, from a docstring written for Python readers
    schema: dict[str, Any] = {"$schema": DRAFT_07, "title": body.pop("title"), "description": description, **body}
    if definitions is not None:
        schema["definitions"] = definitions
    return schema


def schema_files() -> dict[str, str]:
    """File name -> the exact text of each generated schema file."""
    return {
        name: json.dumps(model_schema(model, description), indent=2, ensure_ascii=False) + "\n"
        for name, (model, description) in SCHEMA_FILES.items()
    }
