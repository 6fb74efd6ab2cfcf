"""What /openapi.json says beyond what FastAPI infers: request bodies and error answers.

The routes read and validate their bodies themselves (so the error format is ours), so
FastAPI sees no body parameter; each route declares its body's JSON Schema in
`openapi_extra` instead, generated from the models as they validate.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

from shared.models import Measurement
from shared.models.json_schema import SeedExactSchema

Doc = dict[str, Any]


class _SeedExactSchema(SeedExactSchema):
    """The published schemas' generator (shared/models/json_schema.py), keeping field
    titles: the OpenAPI document has always shown them."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return GenerateJsonSchema.field_title_should_be_set(self, schema)


_CONSTRAINTS = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum"}


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """Replace `#/$defs/X` references by their definitions (the catalog has no cycles)."""
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        out.update(_inline(defs[ref.removeprefix("#/$defs/")], defs))
    for key, value in node.items():
        if key not in ("$ref", "$defs"):
            out[key] = _inline(value, defs)
    if out.get("type") == "number":
        # A constraint on an annotated (validator-wrapped) number keeps pydantic's name.
        out = {_CONSTRAINTS.get(key, key): value for key, value in out.items()}
    return out


def entity_schema(model: type[BaseModel], optional: tuple[str, ...] = ()) -> Doc:
    """A catalog model's schema, self-contained; `optional` fields need not be sent."""
    return copy.deepcopy(_schema_of(model, optional))


@functools.cache
def _schema_of(model: type[BaseModel], optional: tuple[str, ...]) -> Doc:
    full = model.model_json_schema(schema_generator=_SeedExactSchema)
    schema: Doc = _inline(full, full.get("$defs", {}))
    if optional:
        schema["required"] = [f for f in schema.get("required", []) if f not in optional]
    return schema


def body_doc(schema: Doc) -> Doc:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def measurement_doc() -> Doc:
    return body_doc(Measurement.model_json_schema(mode="validation"))


def batch_doc(batch_limit: int) -> Doc:
    items = Measurement.model_json_schema(mode="validation")
    return body_doc({"type": "array", "items": items, "maxItems": batch_limit})


def entity_doc(schema: Doc) -> Doc:
    return {"description": "the entity as stored", "content": {"application/json": {"schema": schema}}}


def list_doc(schema: Doc) -> Doc:
    return entity_doc({"type": "array", "items": schema})


_ERROR_SCHEMA: Doc = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "reason"],
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
        "reason": {"type": "string"},
    },
}
_ERROR_TEXT = {
    400: "the body is not a valid entity, or breaks a catalog rule",
    404: "no such entity",
    409: "the name is taken, or other entities refer to this one",
    503: "the catalog topic cannot be read or written now; retry",
}


def error_docs(*statuses: int) -> dict[int | str, Doc]:
    return {
        status: {"description": _ERROR_TEXT[status], "content": {"application/json": {"schema": _ERROR_SCHEMA}}}
        for status in statuses
    }
