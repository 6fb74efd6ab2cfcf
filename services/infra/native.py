"""The aggregator's hot path, compiled to C by mypyc from the same typed source.

Why: the fold is bound by one core running Python (docs/benchmarks.md). mypyc turns these
strictly typed modules into C extensions that keep their Python semantics (the same
source, tests and types) and take about a quarter less CPU per measurement. Without a C
compiler they simply run as Python: same answers, slower.

A compiled module is an extension file beside its .py, and Python imports the extension
first. An edit to the .py that is not compiled again would silently not run, so the build
(`make native`, scripts/build_native.py) records each source's digest in MANIFEST, and
`stale()` names the compiled modules whose source has changed since. The aggregator and
the test session refuse to start on a stale one.

This module imports none of them: the build runs it before they exist.
"""

from __future__ import annotations

import hashlib
import json
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "build" / "native-sources.json"
# The shared library the modules' entry points live in (mypyc's group), as a module name.
GROUP = "services.native"

# Per measurement, what the aggregator's loop thread runs: decode-and-judge calls into
# resolution, the fold (processing, folding, timeline, series_keys), dedup and the state
# log, the totals rows (projection) and the store's Arrow columns (writer).
MODULES = (
    "services.aggregator.processing",
    "services.aggregator.dedup",
    "services.aggregator.state_log",
    "services.aggregator.projection",
    "services.aggregator.writer",
    "shared.folding",
    "shared.resolution",
    "shared.series_keys",
    "shared.timeline",
)


def source(module: str) -> Path:
    return ROOT.joinpath(*module.split(".")).with_suffix(".py")


def extensions(module: str) -> list[Path]:
    """The extension files that would be imported instead of `module`'s source."""
    path = source(module)
    return [path.with_name(path.stem + suffix) for suffix in EXTENSION_SUFFIXES
            if path.with_name(path.stem + suffix).exists()]


def group_libraries() -> list[Path]:
    package, name = GROUP.rsplit(".", 1)
    folder = ROOT.joinpath(*package.split("."))
    return [p for p in folder.glob(f"{name}__mypyc*") if p.suffix in (".so", ".pyd")]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest() -> dict[str, str]:
    """module -> the digest of the source it was compiled from ({} when never built)."""
    try:
        recorded = json.loads(MANIFEST.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(recorded, dict) or recorded.get("python") != sys.version:
        return {}
    modules = recorded.get("modules")
    return {str(k): str(v) for k, v in modules.items()} if isinstance(modules, dict) else {}


def compiled() -> list[str]:
    return [m for m in MODULES if extensions(m)]


def stale() -> list[str]:
    """The compiled modules whose source differs from the one they were compiled from."""
    recorded = manifest()
    return [m for m in compiled() if recorded.get(m) != digest(source(m))]


def up_to_date() -> bool:
    """Every module compiled, from its current source."""
    return len(compiled()) == len(MODULES) and not stale()


def record() -> None:
    """After a build: remember what each module was compiled from."""
    MANIFEST.parent.mkdir(parents=True, exist_ok=True)
    MANIFEST.write_text(json.dumps(
        {"python": sys.version, "modules": {m: digest(source(m)) for m in MODULES}}, indent=1))


def remove() -> list[Path]:
    """Delete every compiled module (the sources then run as Python); returns what went."""
    gone = [p for m in MODULES for p in extensions(m)] + group_libraries()
    for path in gone:
        path.unlink()
    MANIFEST.unlink(missing_ok=True)
    return gone


def describe() -> str:
    """One line for the logs and the bench: how the hot path runs."""
    done, problems = compiled(), stale()
    if problems:
        return f"hot path STALE: {', '.join(problems)} compiled from older source (run `make native`)"
    if len(done) == len(MODULES):
        return f"hot path compiled (mypyc, {len(done)} modules)"
    if not done:
        return "hot path interpreted (no compiled modules: `make native` builds them)"
    return f"hot path partly compiled: {len(done)} of {len(MODULES)} modules"
