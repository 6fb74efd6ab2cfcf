"""The Dockerfile and .dockerignore, without a Docker engine.

No engine is available here to build the image, so this checks what can be checked
without one: the instructions (base, non-root user, entrypoint, layer order), that every
COPY source exists in the build context that .dockerignore leaves, and that the tree the
COPY instructions lay out under /app is a working install: `metering` starts from it and
finds its ClickHouse migrations.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from services.infra.clickhouse_store import MIGRATIONS_DIR
from tests.ops.support import ROOT

pytestmark = pytest.mark.ops

Instruction = tuple[str, str]


def instructions() -> list[Instruction]:
    text = (ROOT / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    found = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def first(keyword: str) -> int:
    return next(i for i, (k, _) in enumerate(instructions()) if k == keyword)


# ------------------------------------------------------- .dockerignore, as Docker reads it


def ignore_patterns() -> list[tuple[bool, str]]:
    patterns = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        patterns.append((negated, posixpath.normpath(line.lstrip("!")).lstrip("/")))
    return patterns


def _matches(pattern: str, path: str) -> bool:
    escaped = re.escape(pattern)
    regex = escaped.replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
    return re.match(f"^{regex}$", path) is not None


def excluded(path: str, patterns: list[tuple[bool, str]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for negated, pattern in patterns:
        if any(_matches(pattern, candidate) for candidate in candidates):
            result = not negated
    return result


def context_files() -> list[str]:
    patterns = ignore_patterns()
    files = []
    for directory, subdirs, names in os.walk(ROOT):
        rel_dir = os.path.relpath(directory, ROOT)
        # an excluded folder is not entered unless a "!" pattern re-includes something in it
        subdirs[:] = [
            d for d in subdirs
            if not excluded(posixpath.normpath(posixpath.join(rel_dir, d)), patterns)
            or any(neg and p.startswith(posixpath.normpath(posixpath.join(rel_dir, d)) + "/") for neg, p in patterns)
        ]
        for name in names:
            rel = posixpath.normpath(posixpath.join(rel_dir, name))
            if not excluded(rel, patterns):
                files.append(rel)
    return files


def test_dockerignore_semantics() -> None:
    patterns = ignore_patterns()
    assert excluded(".venv/bin/python", patterns)
    assert excluded("services/__pycache__/cli.cpython-311.pyc", patterns)
    assert excluded("deploy/k8s/ingest.yaml", patterns)
    assert not excluded("deploy/clickhouse/002_measurements.sql", patterns)
    assert not excluded("services/cli.py", patterns)
    assert excluded("t747b646777-aggregator-data/x", patterns)


def test_build_context_is_small_and_has_no_local_state() -> None:
    files = context_files()
    assert "requirements.lock" in files and "pyproject.toml" in files
    for path in files:
        top = path.split("/")[0]
        assert top not in {".venv", ".cache", ".metering", ".git", "tests"}, path
        assert "__pycache__" not in path and not path.endswith(".pyc"), path


# ------------------------------------------------------------------------ instructions


def test_base_image_user_and_entrypoint() -> None:
    steps = instructions()
    assert steps[0] == ("FROM", "python:3.11-slim")
    users = [value for keyword, value in steps if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "the image must not run as root"
    entrypoints = [value for keyword, value in steps if keyword == "ENTRYPOINT"]
    assert [json.loads(entrypoints[-1])] == [["metering"]]
    # the non-root user is the one the Kubernetes manifests run as
    assert users[-1] == "10001:10001"


def test_dependencies_install_before_the_code_is_copied() -> None:
    steps = instructions()
    lock_copy = next(i for i, (k, v) in enumerate(steps) if k == "COPY" and "requirements.lock" in v)
    lock_install = next(i for i, (k, v) in enumerate(steps) if k == "RUN" and "-r /app/requirements.lock" in v)
    code_copy = next(i for i, (k, v) in enumerate(steps) if k == "COPY" and v.startswith("services"))
    package_install = next(i for i, (k, v) in enumerate(steps) if k == "RUN" and "pip install --no-deps" in v)
    assert lock_copy < lock_install < code_copy < package_install
    assert first("USER") > package_install, "install as root, run as the unprivileged user"


def copies() -> list[tuple[str, str]]:
    """(source, destination in the image) of every COPY, destinations made absolute."""
    workdir = "/"
    found = []
    for keyword, value in instructions():
        if keyword == "WORKDIR":
            workdir = value if value.startswith("/") else posixpath.join(workdir, value)
        elif keyword == "COPY":
            args = [a for a in value.split() if not a.startswith("--")]
            *sources, destination = args
            destination = destination if destination.startswith("/") else posixpath.join(workdir, destination)
            for source in sources:
                into_folder = destination.endswith("/")
                target = posixpath.join(destination, posixpath.basename(source)) if into_folder else destination
                found.append((source, posixpath.normpath(target)))
    return found


def test_every_copy_source_is_in_the_build_context() -> None:
    files = set(context_files())
    for source, _ in copies():
        assert (ROOT / source).exists(), source
        assert source in files or any(f.startswith(source.rstrip("/") + "/") for f in files), (
            f"{source} is excluded by .dockerignore")


def test_the_copied_tree_runs_and_finds_its_migrations(tmp_path: Path) -> None:
    """Lay out /app as the COPY instructions do (only files the context has) and run it."""
    files = set(context_files())
    image = tmp_path / "image"
    for source, destination in copies():
        target = image / destination.lstrip("/")
        if (ROOT / source).is_dir():
            for path in sorted(files):
                if path.startswith(source.rstrip("/") + "/"):
                    (target / path[len(source.rstrip("/")) + 1:]).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(ROOT / path, target / path[len(source.rstrip("/")) + 1:])
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / source, target)
    app = image / "app"
    probe = (
        "import services, services.cli\n"
        "from services.infra.clickhouse_store import MIGRATIONS_DIR, migrations\n"
        "print(services.__file__); print(MIGRATIONS_DIR); print(len(migrations()))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(app), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    module_file, migrations_dir, count = result.stdout.split()
    assert Path(module_file).is_relative_to(app), "imported the checkout, not the copied tree"
    assert Path(migrations_dir) == app / "deploy" / "clickhouse"
    assert int(count) == len(list(MIGRATIONS_DIR.glob("*.sql")))
    help_text = subprocess.run([sys.executable, "-m", "services.cli", "--help"], cwd=tmp_path, env=env,
                               capture_output=True, text=True)
    assert help_text.returncode == 0, help_text.stderr
    for command in ("ingest", "aggregator", "rater", "topics", "migrate"):
        assert command in help_text.stdout
