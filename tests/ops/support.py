"""Helpers for the ops tests: where things are, and finding the tools they need."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
GO_BIN = ROOT / ".cache" / "go" / "bin"
K8S_SCHEMAS = ROOT / ".cache" / "k8s-schemas"
K8S_VERSION = "1.32.0"  # deploy/ci/install-ops-tools.sh KUBERNETES_SCHEMA_VERSION
INSTALL_HINT = "run `bash deploy/ci/install-ops-tools.sh`"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing(what: str) -> None:
    """A tool is missing: fail in CI, where the installer must have run; skip elsewhere."""
    message = f"{what} is not installed: {INSTALL_HINT}"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def tool(name: str) -> str:
    found = shutil.which(name) or (str(GO_BIN / name) if (GO_BIN / name).is_file() else None)
    if found is None:
        missing(name)
    assert found is not None
    return found


def compose_command() -> list[str]:
    """`docker compose` (the CLI plugin), or the standalone Compose v2 binary."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return [docker, "compose"]
    standalone = GO_BIN / "docker-compose"
    if standalone.is_file():
        return [str(standalone)]
    missing("docker compose (Compose v2)")
    raise AssertionError("unreachable")


def k8s_schema_dir() -> Path:
    folder = K8S_SCHEMAS / f"v{K8S_VERSION}-local-strict"
    if not (folder / "_definitions.json").is_file():
        missing(f"the Kubernetes {K8S_VERSION} JSON schemas ({folder})")
    return folder
