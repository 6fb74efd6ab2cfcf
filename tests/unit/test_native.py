"""services.infra.native: which hot-path modules run compiled, and which were compiled from
an older source (an extension is imported before its .py, so an edit not compiled again
would silently not run)."""

from __future__ import annotations

import importlib
from importlib.machinery import EXTENSION_SUFFIXES, ExtensionFileLoader
from pathlib import Path

import pytest

from services.infra import native

MODULES = ("pkg.fast", "pkg.sub.faster")


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for module in MODULES:
        path = tmp_path.joinpath(*module.split(".")).with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"NAME = {module!r}\n")
    monkeypatch.setattr(native, "ROOT", tmp_path)
    monkeypatch.setattr(native, "MANIFEST", tmp_path / "build" / "native-sources.json")
    monkeypatch.setattr(native, "MODULES", MODULES)
    monkeypatch.setattr(native, "GROUP", "pkg.native")
    return tmp_path


def compile_all(root: Path) -> None:
    """What a build leaves: an extension beside each source, the group library, the record."""
    for module in MODULES:
        source = native.source(module)
        source.with_name(source.stem + EXTENSION_SUFFIXES[0]).write_bytes(b"\x7fELF")
    (root / "pkg" / f"native__mypyc{EXTENSION_SUFFIXES[0]}").write_bytes(b"\x7fELF")
    native.record()


def test_nothing_compiled_is_interpreted_and_never_stale(tree: Path) -> None:
    assert (native.compiled(), native.stale(), native.up_to_date()) == ([], [], False)
    assert native.describe().startswith("hot path interpreted")


def test_a_build_is_up_to_date_until_a_source_changes(tree: Path) -> None:
    compile_all(tree)
    assert (native.compiled(), native.stale(), native.up_to_date()) == (list(MODULES), [], True)
    assert native.describe() == "hot path compiled (mypyc, 2 modules)"
    native.source("pkg.sub.faster").write_text("NAME = 'edited'\n")
    assert (native.stale(), native.up_to_date()) == (["pkg.sub.faster"], False)
    assert "STALE: pkg.sub.faster" in native.describe()


def test_without_its_record_or_from_another_python_every_compiled_module_is_stale(tree: Path) -> None:
    compile_all(tree)
    native.MANIFEST.write_text(native.MANIFEST.read_text().replace('"python"', '"python_was"'))
    assert native.stale() == list(MODULES)
    native.MANIFEST.unlink()
    assert native.stale() == list(MODULES)
    native.MANIFEST.write_text("not json")
    assert native.stale() == list(MODULES)


def test_a_partial_build_says_so_and_is_not_up_to_date(tree: Path) -> None:
    compile_all(tree)
    for path in native.extensions("pkg.fast"):
        path.unlink()
    assert (native.compiled(), native.up_to_date()) == (["pkg.sub.faster"], False)
    assert native.describe() == "hot path partly compiled: 1 of 2 modules"


def test_remove_leaves_the_sources_only(tree: Path) -> None:
    compile_all(tree)
    gone = native.remove()
    assert len(gone) == 3  # two modules and the group's library
    assert sorted(p.name for p in tree.rglob("*") if p.is_file()) == ["fast.py", "faster.py"]
    assert native.compiled() == []


def test_the_checkout_is_not_stale_and_compiled_modules_are_the_ones_imported() -> None:
    """On this checkout: whatever `make native` built is current, and Python imports it."""
    assert native.stale() == []
    for module in native.compiled():
        # Its loader, not its path: a module first loaded through the group's library gets
        # a path under the library's folder (services/services/...) from mypyc.
        spec = importlib.import_module(module).__spec__
        assert spec is not None and isinstance(spec.loader, ExtensionFileLoader), (module, spec)
