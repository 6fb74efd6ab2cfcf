"""Extract one Kubernetes version's JSON schemas from the kubernetes-validate wheel.

kubernetes-validate (PyPI) bundles the Kubernetes OpenAPI schemas as JSON Schema, one
file per kind (e.g. deployment-apps-v1.json), the same names kubeconform looks for.
Its schemas refer to a shared `/api/_definitions.json` under an `https://kubernetes.io`
`$id`, which kubeconform would try to download; this rewrites those references to the
sibling `_definitions.json` file and drops the `$id`s, so kubeconform resolves them on
disk. Nothing else in the schemas changes.

usage: python k8s_schemas.py WHEEL VERSION DEST   (e.g. ... 1.32.0 .cache/k8s-schemas)
writes DEST/vVERSION-local-strict/*.json
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path
from typing import Any

DEFINITIONS = "/api/_definitions.json"


def relocate(node: Any) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$id" and isinstance(value, str):
                continue
            if key == "$ref" and isinstance(value, str) and value.startswith(DEFINITIONS):
                value = "_definitions.json" + value[len(DEFINITIONS):]
            out[key] = relocate(value)
        return out
    if isinstance(node, list):
        return [relocate(value) for value in node]
    return node


def main(wheel: str, version: str, dest: str) -> int:
    folder = f"v{version}-local-strict"
    prefix = f"kubernetes_validate/kubernetes-json-schema/{folder}/"
    target = Path(dest) / folder
    partial = Path(dest) / f".{folder}.partial"
    partial.mkdir(parents=True, exist_ok=True)
    count = 0
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.namelist():
            if member.startswith(prefix) and member.endswith(".json"):
                schema = relocate(json.loads(archive.read(member)))
                (partial / member[len(prefix):]).write_text(json.dumps(schema))
                count += 1
    if count == 0 or not (partial / "_definitions.json").exists():
        raise SystemExit(f"{wheel} has no schemas for Kubernetes {version}")
    if target.exists():
        for old in target.iterdir():
            old.unlink()
        target.rmdir()
    partial.rename(target)
    print(f"{count} schemas for Kubernetes {version} in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
