"""The seed JSON Schemas (Customer, PricePlan), and ours in docs/schemas, as jsonschema validators.

The seeds are text files (a description, then a line "JSON Schema", then the schema
as JSON up to the end of the file). They live in the repository's parent directory,
`<parent>/shared/seeds`; when that directory is missing, `METERING_SEEDS_DIR` names it.
A clone with neither skips the tests that need them (`requires_seeds`, `skip_without_seeds`)
rather than failing: the generated schemas in docs/schemas are checked without them.

The validator is draft-07 with `Draft7Validator.FORMAT_CHECKER`, extended by exactly
one thing: the OpenAPI keyword `nullable: true` lets `null` through the `type` check
(the seed marks `PriceTier.cap` so; see the docstring of shared/models/price_plan.py).
Nothing else about draft-07 is relaxed. The schema is tightened by exactly one thing:
our documented name bound (docs/decisions.md, "Limits"), `maxLength` on the entity's
`name`, so the agreement tests hold the models to the seed plus that bound, no more.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator, ValidationError, validators

from shared.models.limits import MAX_NAME_LENGTH

CUSTOMER_SEED = "000_1ddb7fb408c24a1d.txt"
PRICE_PLAN_SEED = "003_79585cfe52c2b8ed.txt"
SCHEMA_MARKER = "JSON Schema"
SEEDS_ENV = "METERING_SEEDS_DIR"

DEFAULT_SEEDS_DIR = Path(__file__).resolve().parents[3] / "shared" / "seeds"
GENERATED_DIR = Path(__file__).resolve().parents[2] / "docs" / "schemas"  # make schemas


def seeds_available() -> bool:
    """Whether seeds_dir() has somewhere to look: the default place exists, or the variable is set.

    A set variable naming a missing directory counts as available, so that mistake fails
    loudly instead of skipping.
    """
    return DEFAULT_SEEDS_DIR.is_dir() or bool(os.environ.get(SEEDS_ENV))


SEEDS_MISSING = f"seed schemas not found at {DEFAULT_SEEDS_DIR} and {SEEDS_ENV} is not set"
requires_seeds = pytest.mark.skipif(not seeds_available(), reason=SEEDS_MISSING)


def skip_without_seeds() -> None:
    """Skip the calling test module at import, before it reads a seed at module level."""
    if not seeds_available():
        pytest.skip(SEEDS_MISSING, allow_module_level=True)


def seeds_dir() -> Path:
    """`<repo parent>/shared/seeds`, or `$METERING_SEEDS_DIR` when that is missing."""
    if DEFAULT_SEEDS_DIR.is_dir():
        return DEFAULT_SEEDS_DIR
    configured = os.environ.get(SEEDS_ENV)
    if configured:
        return Path(configured)
    raise FileNotFoundError(
        f"seed schemas not found at {DEFAULT_SEEDS_DIR}; set {SEEDS_ENV} to their directory"
    )


def load_seed_schema(filename: str) -> dict[str, Any]:
    """The JSON Schema embedded in one seed file (from the line after "JSON Schema")."""
    lines = (seeds_dir() / filename).read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        if line.strip() == SCHEMA_MARKER:
            schema = json.loads("\n".join(lines[index + 1 :]))
            if not isinstance(schema, dict):
                raise ValueError(f"{filename}: the schema is not a JSON object")
            return schema
    raise ValueError(f"{filename}: no line {SCHEMA_MARKER!r}")


def _nullable_type(
    validator: Any, types: Any, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    # OpenAPI's `nullable: true`: null passes the `type` check; everything else as draft-07.
    if instance is None and schema.get("nullable") is True:
        return
    yield from Draft7Validator.VALIDATORS["type"](validator, types, instance, schema)


NullableDraft7Validator: Any = validators.extend(Draft7Validator, {"type": _nullable_type})


def with_name_bound(schema: dict[str, Any]) -> dict[str, Any]:
    """The seed schema with our name bound: `maxLength` on the root `name` property."""
    bounded = json.loads(json.dumps(schema))
    bounded["properties"]["name"]["maxLength"] = MAX_NAME_LENGTH
    return bounded


def seed_validator(filename: str) -> Any:
    schema = with_name_bound(load_seed_schema(filename))
    Draft7Validator.check_schema(schema)
    return NullableDraft7Validator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)


@cache
def customer_validator() -> Any:
    return seed_validator(CUSTOMER_SEED)


@cache
def price_plan_validator() -> Any:
    return seed_validator(PRICE_PLAN_SEED)


@cache
def generated_validator(filename: str) -> Any:
    """A plain draft-07 validator (format checks on) of a schema in docs/schemas: what a
    client using our published schema would run. No `nullable` extension: ours says
    `anyOf: [number, null]` where null is allowed."""
    schema = json.loads((GENERATED_DIR / filename).read_text(encoding="utf-8"))
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema, format_checker=Draft7Validator.FORMAT_CHECKER)
