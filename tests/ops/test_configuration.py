"""Every metering container in deploy/ (Kubernetes, Compose, the image's own ENV) gets an
environment from which Settings load without an error: no unknown METERING_* variable,
no bad value. This needs no tool, so it runs everywhere."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from services.settings import VARIABLES, Settings, problems
from tests.ops.support import DEPLOY, ROOT

pytestmark = pytest.mark.ops

IMAGE_ENV = re.compile(r"^ENV\s+((?:.*\\\n)*.*)$", re.M)
INTERPOLATION = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def dockerfile_env() -> dict[str, str]:
    found: dict[str, str] = {}
    for block in IMAGE_ENV.findall((ROOT / "Dockerfile").read_text()):
        for pair in block.replace("\\\n", " ").split():
            name, _, value = pair.partition("=")
            found[name] = value
    return found


def kubernetes_containers() -> Iterator[tuple[str, dict[str, str]]]:
    paths = sorted((DEPLOY / "k8s").glob("*.yaml"))
    documents = [d for path in paths for d in yaml.safe_load_all(path.read_text()) if d]
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in documents if d["kind"] == "ConfigMap"}
    secrets = {d["metadata"]["name"]: d.get("stringData", {}) for d in documents if d["kind"] == "Secret"}
    for workload in documents:
        if workload["kind"] not in {"Deployment", "StatefulSet", "Job"}:
            continue
        spec = workload["spec"]["template"]["spec"]
        for container in spec.get("initContainers", []) + spec["containers"]:
            if not container["image"].startswith("metering:"):
                continue
            env = dockerfile_env()
            for source in container.get("envFrom", []):
                env.update(maps[source["configMapRef"]["name"]])
            for entry in container.get("env", []):
                if "value" in entry:
                    env[entry["name"]] = entry["value"]
                else:
                    ref = entry["valueFrom"]["secretKeyRef"]
                    env[entry["name"]] = secrets[ref["name"]][ref["key"]]
            yield f"{workload['metadata']['name']}/{container['name']}", env


def compose_services() -> Iterator[tuple[str, dict[str, str]]]:
    model: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name, service in model["services"].items():
        if not str(service.get("image", "")).startswith("${METERING_IMAGE"):
            continue
        env = dockerfile_env()
        for variable, value in service.get("environment", {}).items():
            # The file's own defaults, as `docker compose` resolves them in an empty shell.
            env[variable] = INTERPOLATION.sub(lambda m: m.group(2) or "", str(value))
        yield name, env


CONTAINERS = [*kubernetes_containers(), *compose_services()]


def test_every_metering_container_was_found() -> None:
    names = {name for name, _ in CONTAINERS}
    assert {"metering-ingest/ingest", "metering-rater/rater", "ingest", "rater", "aggregator-1", "init"} <= names
    assert len(names) >= 10


@pytest.mark.parametrize(("name", "environment"), CONTAINERS, ids=[name for name, _ in CONTAINERS])
def test_the_container_environment_is_a_valid_configuration(
    name: str, environment: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in list(os.environ):
        if variable in VARIABLES or variable.startswith("METERING_"):
            monkeypatch.delenv(variable)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    try:
        settings = Settings()
    except ValidationError as error:
        pytest.fail(f"{name}: {problems(error)}")
    assert settings.kafka.bootstrap_servers, f"{name}: a deployed service needs KAFKA_BOOTSTRAP_SERVERS"
    assert settings.http.host == "0.0.0.0", f"{name}: reachable from outside its container"
