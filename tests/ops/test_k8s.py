"""deploy/k8s: kubeconform validates every manifest against the Kubernetes schemas
(strict: unknown fields are errors), then the wiring between them is checked.

The schemas come from the kubernetes-validate wheel on PyPI (GitHub, where kubeconform
downloads them by default, is out of reach here): deploy/ci/install-ops-tools.sh
extracts one Kubernetes version's into .cache/k8s-schemas.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.support import DEPLOY, K8S_VERSION, k8s_schema_dir, tool

pytestmark = pytest.mark.ops

K8S = DEPLOY / "k8s"
MANIFESTS = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def kubeconform(*paths: Path) -> subprocess.CompletedProcess[str]:
    location = str(k8s_schema_dir().parent / "{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}"
                   / "{{ .ResourceKind }}{{ .KindSuffix }}.json")
    return subprocess.run(
        [tool("kubeconform"), "-strict", "-summary", "-kubernetes-version", K8S_VERSION,
         "-schema-location", location, "-skip", "Kustomization", *map(str, paths)],
        capture_output=True, text=True, timeout=120,
    )


def test_kubeconform_validates_every_manifest() -> None:
    result = kubeconform(K8S)
    assert result.returncode == 0, result.stdout + result.stderr
    documents = sum(1 for _ in objects())
    assert f"Valid: {documents}, Invalid: 0, Errors: 0, Skipped: 1" in result.stdout, result.stdout


def test_kubeconform_rejects_what_kubernetes_would_reject(tmp_path: Path) -> None:
    """The schemas are really applied: a typo and a wrong type are both caught."""
    broken = (K8S / "rater.yaml").read_text().replace("replicas: 1", "replica: 1").replace(
        "containerPort: 8082", 'containerPort: "8082"')
    (tmp_path / "rater.yaml").write_text(broken)
    result = kubeconform(tmp_path / "rater.yaml")
    assert result.returncode != 0
    assert "additional properties 'replica' not allowed" in result.stdout
    assert "containerPort" in result.stdout


# ------------------------------------------------------------------------ wiring


def objects() -> Iterator[dict[str, Any]]:
    for path in MANIFESTS:
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield document


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects() if o["kind"] == kind}


def workloads() -> dict[str, dict[str, Any]]:
    return {**by_kind("Deployment"), **by_kind("StatefulSet"), **by_kind("Job")}


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def container(name: str) -> dict[str, Any]:
    (main,) = pod_spec(by_kind("Deployment")[name])["containers"]
    return dict(main)


def test_kustomization_lists_every_manifest_and_no_yaml_aliases() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [p.name for p in MANIFESTS]
    for path in MANIFESTS:  # kustomize mishandles YAML anchors: keep manifests plain
        for event in yaml.parse(path.read_text()):
            assert not isinstance(event, yaml.AliasEvent) and getattr(event, "anchor", None) is None, path.name
    assert {o["metadata"].get("namespace", "metering") for o in objects() if o["kind"] != "Namespace"} == {"metering"}


def test_selectors_select_their_pods() -> None:
    for name, workload in {**by_kind("Deployment"), **by_kind("StatefulSet")}.items():
        assert selects(workload["spec"]["selector"]["matchLabels"], pod_labels(workload)), name
    pods = [pod_labels(w) for w in workloads().values()]
    for name, service in by_kind("Service").items():
        matched = [w for w in workloads().values() if selects(service["spec"]["selector"], pod_labels(w))]
        assert matched, f"Service {name} selects no pods"
        ports = {p["name"] for w in matched for c in pod_spec(w)["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"Service {name}: no container port {port['targetPort']}"
    for name, budget in by_kind("PodDisruptionBudget").items():
        assert any(selects(budget["spec"]["selector"]["matchLabels"], labels) for labels in pods), name
    for name, autoscaler in by_kind("HorizontalPodAutoscaler").items():
        target = autoscaler["spec"]["scaleTargetRef"]
        assert target["name"] in by_kind(target["kind"]), name


PROBES = {  # deployment: (port, readiness path, liveness path)
    "metering-ingest": (8080, "/readyz", "/healthz"),
    "metering-aggregator": (8081, "/readyz", "/healthz"),
    "metering-rater": (8082, "/readyz", "/healthz"),
}


@pytest.mark.parametrize("name", sorted(PROBES))
def test_probes_are_wired_to_the_service_ports(name: str) -> None:
    port, ready, alive = PROBES[name]
    main = container(name)
    assert main["ports"] == [{"name": "http", "containerPort": port}]
    assert main["readinessProbe"]["httpGet"] == {"path": ready, "port": "http"}
    assert main["livenessProbe"]["httpGet"] == {"path": alive, "port": "http"}
    assert main["startupProbe"]["httpGet"]["port"] == "http"
    config = by_kind("ConfigMap")["metering-config"]["data"]
    variable = {"metering-ingest": "METERING_HTTP_PORT", "metering-aggregator": "METERING_AGGREGATOR_PORT",
                "metering-rater": "METERING_RATER_PORT"}[name]
    assert config[variable] == str(port)
    assert config["METERING_HTTP_HOST"] == "0.0.0.0", "the services must listen beyond localhost"
    assert main["args"] == [name.removeprefix("metering-")]


def test_replica_rules() -> None:
    deployments = by_kind("Deployment")
    partitions = int(by_kind("ConfigMap")["metering-config"]["data"]["METERING_PARTITIONS"])
    rater = deployments["metering-rater"]["spec"]
    assert rater["replicas"] == 1 and rater["strategy"]["type"] == "Recreate", "a second rater would be fenced"
    assert "metering-rater" not in by_kind("HorizontalPodAutoscaler")
    aggregator = deployments["metering-aggregator"]["spec"]
    assert 1 <= aggregator["replicas"] <= partitions, "workers beyond the partition count sit idle"
    assert aggregator["strategy"]["rollingUpdate"]["maxSurge"] == 0
    autoscaler = by_kind("HorizontalPodAutoscaler")["metering-ingest"]["spec"]
    assert autoscaler["minReplicas"] >= 2


def test_the_ingest_pod_runs_a_process_per_requested_core() -> None:
    """METERING_INGEST_PROCESSES' default would be the node's cores (a pod's CPU request sets
    no quota), so the Deployment says how many, and requests a core for each."""
    ingest = container("metering-ingest")
    env = {v["name"]: v["value"] for v in ingest.get("env", []) if "value" in v}
    processes = int(env["METERING_INGEST_PROCESSES"])
    assert processes >= 1
    cpu = str(ingest["resources"]["requests"]["cpu"])
    cores = int(cpu.removesuffix("m")) / 1000 if cpu.endswith("m") else float(cpu)
    assert cores == processes
    assert "METERING_INGEST_PROCESSES" not in by_kind("ConfigMap")["metering-config"]["data"]


def test_secrets_and_config_reach_the_right_containers() -> None:
    secret = by_kind("Secret")["metering-secrets"]["stringData"]
    configmaps = by_kind("ConfigMap")
    for name, workload in workloads().items():
        spec = pod_spec(workload)
        for main in spec.get("initContainers", []) + spec["containers"]:
            for source in main.get("envFrom", []):
                assert source["configMapRef"]["name"] in configmaps, name
            for variable in main.get("env", []):
                if "value" in variable:
                    continue  # a setting of this workload alone, not a secret
                ref = variable["valueFrom"]["secretKeyRef"]
                assert ref["name"] == "metering-secrets" and ref["key"] in secret, name
    def secret_keys(deployment: str) -> set[str]:
        return {v["valueFrom"]["secretKeyRef"]["key"] for v in container(deployment).get("env", []) if "valueFrom" in v}
    assert secret_keys("metering-ingest") == {"METERING_API_KEY"}
    # several workers share one store: the aggregator must use a ClickHouse server
    assert secret_keys("metering-aggregator") == {"CLICKHOUSE_URL"}
    assert secret_keys("metering-rater") == set()


def test_init_job_creates_topics_then_migrates() -> None:
    job = pod_spec(by_kind("Job")["metering-init"])
    assert [c["args"] for c in job["initContainers"]] == [["topics"]]
    assert [c["args"] for c in job["containers"]] == [["migrate"]]
    assert {v["name"] for v in job["containers"][0]["env"]} == {"CLICKHOUSE_URL"}


def test_pods_run_unprivileged_as_the_image_user() -> None:
    for name, workload in workloads().items():
        spec = pod_spec(workload)
        context = spec["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] == 10001, name
        mounts_needed = {"/var/lib/metering", "/tmp"}
        for main in spec.get("initContainers", []) + spec["containers"]:
            security = main["securityContext"]
            assert security["allowPrivilegeEscalation"] is False and security["readOnlyRootFilesystem"] is True, name
            assert security["capabilities"]["drop"] == ["ALL"], name
            assert mounts_needed <= {m["mountPath"] for m in main["volumeMounts"]}, name
            assert main["resources"]["requests"] and main["resources"]["limits"]["memory"], name
            assert main["image"].split(":")[0] == "metering", name


def test_prometheus_discovers_every_pod() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus-k8s.yml").read_text())
    services = by_kind("Service")
    for job in config["scrape_configs"]:
        for sd in job["dns_sd_configs"]:
            for record in sd["names"]:
                port_name, service, namespace, *_ = record.lstrip("_").replace("._tcp", "").split(".")
                spec = services[service]["spec"]
                assert namespace == "metering" and port_name in {p["name"] for p in spec["ports"]}, record
                assert spec["clusterIP"] == "None" and spec["publishNotReadyAddresses"] is True, record
                component = services[service]["metadata"]["labels"]["app.kubernetes.io/component"]
                assert job["job_name"] == f"metering-{component}"
