"""The ops tests' own tooling: the installer, and failing (not skipping) under CI."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.ops import support

pytestmark = pytest.mark.ops

INSTALLER = support.DEPLOY / "ci" / "install-ops-tools.sh"


def test_a_missing_tool_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"install-ops-tools\.sh"):
        support.tool("no-such-ops-tool")


def test_a_missing_tool_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        support.tool("no-such-ops-tool")


def test_installer_is_valid_bash_and_agrees_with_the_tests() -> None:
    assert subprocess.run(["bash", "-n", str(INSTALLER)], capture_output=True).returncode == 0
    text = INSTALLER.read_text()
    assert re.search(rf"^KUBERNETES_SCHEMA_VERSION={re.escape(support.K8S_VERSION)}$", text, re.MULTILINE)
    assert str(support.K8S_SCHEMAS.relative_to(support.ROOT)) in text.replace("$ROOT/", "")
