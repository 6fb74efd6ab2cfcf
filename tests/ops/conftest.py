"""Deployment and observability artifacts (deploy/, Dockerfile), checked with real tools.

Tests that need a binary (promtool, prometheus, kubeconform, docker compose) fail with
a clear message under CI (CI=true) when it is missing, and skip elsewhere;
`bash deploy/ci/install-ops-tools.sh` installs all of them.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "ops: checks deploy/ artifacts (Prometheus, Grafana, compose, Kubernetes, Dockerfile)"
    )

