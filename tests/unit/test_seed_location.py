"""Where the seed-schema tests find the seeds, and when they skip instead of failing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit import seed_schemas


def test_without_the_seeds_beside_the_repository_or_the_variable_the_seed_tests_skip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(seed_schemas, "DEFAULT_SEEDS_DIR", tmp_path / "missing")
    monkeypatch.delenv(seed_schemas.SEEDS_ENV, raising=False)
    assert not seed_schemas.seeds_available()
    with pytest.raises(FileNotFoundError, match=seed_schemas.SEEDS_ENV):
        seed_schemas.seeds_dir()


def test_the_seeds_beside_the_repository_come_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seed_schemas, "DEFAULT_SEEDS_DIR", tmp_path)
    monkeypatch.setenv(seed_schemas.SEEDS_ENV, str(tmp_path / "elsewhere"))
    assert seed_schemas.seeds_available()
    assert seed_schemas.seeds_dir() == tmp_path


def test_a_set_variable_counts_even_when_it_names_a_missing_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A typo in the variable must fail the seed tests loudly, not skip them.
    monkeypatch.setattr(seed_schemas, "DEFAULT_SEEDS_DIR", tmp_path / "missing")
    monkeypatch.setenv(seed_schemas.SEEDS_ENV, str(tmp_path / "typo"))
    assert seed_schemas.seeds_available()
    assert seed_schemas.seeds_dir() == tmp_path / "typo"
