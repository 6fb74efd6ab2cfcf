"""`metering check-config`, and every command refusing an invalid configuration up front."""

from __future__ import annotations

import os

import pytest

from services import cli
from services.settings import VARIABLES


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name in VARIABLES or name.startswith("METERING_"):
            monkeypatch.delenv(name)
    # main() installs the JSON log handler; the test process keeps its own logging.
    monkeypatch.setattr(cli, "_configure_logging", lambda: None)
    return monkeypatch


def test_a_valid_configuration_is_printed_with_secrets_masked(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("METERING_API_KEY", "s3cret-key")
    env.setenv("CLICKHOUSE_URL", "http://metering:pa55@clickhouse:8123")
    env.setenv("METERING_PARTITIONS", "6")
    assert cli.main(["check-config"]) == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert "METERING_PARTITIONS=6" in lines
    assert "METERING_API_KEY=********" in lines
    assert "CLICKHOUSE_URL=http://metering:********@clickhouse:8123" in lines
    assert "s3cret-key" not in out.out + out.err and "pa55" not in out.out + out.err


def test_an_invalid_configuration_exits_non_zero_naming_every_error(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("METERING_PARTITONS", "6")  # mistyped
    env.setenv("METERING_HTTP_PORT", "eighty")  # bad value
    env.setenv("METERING_IDLE_SECONDS", "0")  # out of range
    assert cli.main(["check-config"]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.splitlines() == [
        "invalid configuration (3 errors):",
        "  METERING_HTTP_PORT='eighty': Input should be a valid integer, unable to parse string as an integer",
        "  METERING_IDLE_SECONDS='0': Input should be greater than 0",
        "  METERING_PARTITONS: not a setting (did you mean METERING_PARTITIONS?)",
    ]


def test_a_service_with_a_mistyped_variable_does_not_start(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def must_not_run(*_: object) -> None:
        raise AssertionError("the service started")

    env.setattr("services.ingest.main.run", must_not_run)
    env.setenv("METERING_LOCAL_DEMO", "true")
    env.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    env.setenv("METERING_MAX_BODY_BYTE", "1048576")
    assert cli.main(["ingest"]) == 2
    assert "METERING_MAX_BODY_BYTE: not a setting (did you mean METERING_MAX_BODY_BYTES?)" in capsys.readouterr().err
