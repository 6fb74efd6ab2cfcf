"""docs/schemas holds the Customer and PricePlan JSON Schemas exactly as the models generate
them (`make schemas`), and they judge payloads as the models do.

The full agreement with the seed schemas, case by case, is in test_seed_schema_agreement.py
(it needs ../shared/seeds); these checks need nothing outside the repository.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pydantic
import pytest

from services.demo import GROWTH_PLAN
from shared.models import Customer, PricePlan
from shared.models.json_schema import SCHEMA_FILES, schema_files
from tests.unit.seed_schemas import GENERATED_DIR, generated_validator

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "generate_schemas.py"


def _generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, timeout=60)


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES))
def test_the_committed_schema_is_what_the_models_generate(name: str) -> None:
    committed = (GENERATED_DIR / name).read_bytes()
    assert committed == schema_files()[name].encode(), f"docs/schemas/{name} is stale: run `make schemas`"


def test_regenerating_writes_identical_bytes(tmp_path: Path) -> None:
    done = _generate("--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(SCHEMA_FILES)
    for name in SCHEMA_FILES:
        assert (tmp_path / name).read_bytes() == (GENERATED_DIR / name).read_bytes(), name


def test_check_names_a_stale_or_missing_file(tmp_path: Path) -> None:
    assert _generate("--out", str(tmp_path)).returncode == 0
    assert _generate("--check", "--out", str(tmp_path)).returncode == 0
    (tmp_path / "customer.schema.json").write_text("{}\n")
    (tmp_path / "price_plan.schema.json").unlink()
    done = _generate("--check", "--out", str(tmp_path))
    assert done.returncode == 1
    assert "customer.schema.json is not current" in done.stderr
    assert "price_plan.schema.json is not current" in done.stderr


def _model_accepts(model: type[pydantic.BaseModel], payload: Any) -> bool:
    try:
        model.model_validate(payload)
    except pydantic.ValidationError:
        return False
    return True


def _with(base: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(base)
    node: Any = out
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return out


TIER = ("metered_components", 0, "price_scheme", "prices", 0)
PLAN_CASES = [
    ("worked-example", GROWTH_PLAN, True),
    ("unknown-fields-kept", {**GROWTH_PLAN, "x-owner": "billing"}, True),
    ("cap-null-is-no-bound", _with(GROWTH_PLAN, (*TIER, "cap"), None), True),
    ("base-price-as-string", {**GROWTH_PLAN, "base_price": "49"}, False),
    ("base-price-negative", {**GROWTH_PLAN, "base_price": -1}, False),
    ("tier-price-negative", _with(GROWTH_PLAN, (*TIER, "price"), -0.5), False),
    ("display-name-null", {**GROWTH_PLAN, "display_name": None}, False),
    ("period-weekly", {**GROWTH_PLAN, "period": "weekly"}, False),
    ("no-components", {k: v for k, v in GROWTH_PLAN.items() if k != "metered_components"}, False),
    ("name-257", {**GROWTH_PLAN, "name": "p" * 257}, False),
    ("trial-length-3.0", {**GROWTH_PLAN, "trial": {"time_length": 3.0}}, True),
    ("trial-length-3.5", {**GROWTH_PLAN, "trial": {"time_length": 3.5}}, False),
    ("created-at-no-offset", {**GROWTH_PLAN, "created_at": "2026-01-01T00:00:00"}, False),
]
CUSTOMER_CASES = [
    ("name-only", {"name": "acme"}, True),
    ("contact",
     {"name": "acme", "contact_info": {"email": "billing@acme.example", "url": "https://acme.example"}}, True),
    ("bad-email", {"name": "acme", "contact_info": {"email": "not an address"}}, False),
    ("mapping-not-object", {"name": "acme", "measurement_mappings": ["acme-1"]}, False),
    ("no-name", {"display_name": "Acme"}, False),
    ("name-number", {"name": 7}, False),
    ("tags-null", {"name": "acme", "tags": None}, False),
]


@pytest.mark.parametrize(
    ("model", "filename", "payload", "expected"),
    [pytest.param(PricePlan, "price_plan.schema.json", p, ok, id=f"plan-{n}") for n, p, ok in PLAN_CASES]
    + [pytest.param(Customer, "customer.schema.json", p, ok, id=f"customer-{n}") for n, p, ok in CUSTOMER_CASES],
)
def test_the_published_schema_judges_as_the_model_does(
    model: type[pydantic.BaseModel], filename: str, payload: Any, expected: bool
) -> None:
    assert generated_validator(filename).is_valid(payload) == expected
    assert _model_accepts(model, payload) == expected
