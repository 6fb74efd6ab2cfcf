"""services/settings.py: grouped Settings read from the same variables as always, and
refused, naming every error, when a METERING_* variable is unknown or a value is bad."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from services.infra.cores import available_cores
from services.settings import (
    MAX_RECORD_BYTES,
    OTHER_VARIABLES,
    VARIABLES,
    KafkaSettings,
    Settings,
    describe,
    problems,
    settings_env,
)

ROOT = Path(__file__).resolve().parents[2]

# Every variable, none at its default.
FULL = {
    "METERING_DATA_DIR": "/var/lib/metering",
    "KAFKA_BOOTSTRAP_SERVERS": "k1:9092,k2:9092",
    "METERING_TOPIC_PREFIX": "prod.",
    "METERING_PARTITIONS": "8",
    "METERING_REPLICATION_FACTOR": "3",
    "METERING_CONSUMER_GROUP_PREFIX": "prod",
    "METERING_SESSION_TIMEOUT_SECONDS": "6.5",
    "METERING_STOP_GRACE_SECONDS": "12",
    "CLICKHOUSE_URL": "https://metering:pa55@clickhouse:8443/",
    "METERING_CLICKHOUSE_DATABASE": "billing",
    "METERING_HTTP_HOST": "0.0.0.0",
    "METERING_HTTP_PORT": "9080",
    "METERING_AGGREGATOR_PORT": "9081",
    "METERING_RATER_PORT": "9082",
    "METERING_AGGREGATOR_URL": "http://aggregator:9081",
    "METERING_READY_PEERS": "http://a:9081/readyz, http://b:9082/readyz",
    "METERING_API_KEY": "s3cret-key",
    "METERING_LOCAL_DEMO": "true",
    "METERING_INGEST_PROCESSES": "3",
    "METERING_ALLOWED_LATENESS_SECONDS": "0.5",
    "METERING_GRACE_SECONDS": "1.5",
    "METERING_IDLE_SECONDS": "2.5",
    "METERING_MAX_FUTURE_SECONDS": "60",
    "METERING_DEDUP_WINDOW_DAYS": "40",
    "METERING_HOUSEKEEPING_SECONDS": "5",
    "METERING_BATCH_LIMIT": "500",
    "METERING_MAX_BODY_BYTES": "65536",
    "METERING_MAX_RECORD_BYTES": "4096",
    "METERING_DEDUP_IDS": "store",
    "METERING_DEDUP_FILTER_MIB": "32",
    "METERING_DEDUP_RECENT_IDS": "1000",
    "METERING_AGGREGATOR_SLICE_BYTES": "65536",
}

EXPECTED: dict[str, Any] = {
    "data_dir": Path("/var/lib/metering"),
    "kafka.bootstrap_servers": "k1:9092,k2:9092",
    "kafka.topic_prefix": "prod.",
    "kafka.partitions": 8,
    "kafka.replication_factor": 3,
    "kafka.consumer_group_prefix": "prod",
    "kafka.session_timeout_seconds": 6.5,
    "kafka.stop_grace_seconds": 12.0,
    "clickhouse.url": "https://metering:pa55@clickhouse:8443/",
    "clickhouse.database": "billing",
    "http.host": "0.0.0.0",
    "http.port": 9080,
    "http.aggregator_port": 9081,
    "http.rater_port": 9082,
    "http.aggregator_url": "http://aggregator:9081",
    "http.ready_peers": ["http://a:9081/readyz", "http://b:9082/readyz"],
    "http.api_key": "s3cret-key",
    "http.local_demo": True,
    "http.ingest_processes": 3,
    "event_time.allowed_lateness_seconds": 0.5,
    "event_time.grace_seconds": 1.5,
    "event_time.idle_seconds": 2.5,
    "event_time.max_future_seconds": 60.0,
    "event_time.dedup_window_days": 40,
    "event_time.housekeeping_seconds": 5.0,
    "limits.batch_limit": 500,
    "limits.max_body_bytes": 65536,
    "limits.max_record_bytes": 4096,
    "limits.dedup_ids": "store",
    "limits.dedup_filter_mib": 32,
    "limits.dedup_recent_ids": 1000,
    "limits.aggregator_slice_bytes": 65536,
}

# Set only in the Grafana container (deploy/grafana/provisioning), never for a service.
GRAFANA_VARIABLES = {
    "METERING_PROMETHEUS_URL", "METERING_CLICKHOUSE_HOST",
    "METERING_CLICKHOUSE_READER_USER", "METERING_CLICKHOUSE_READER_PASSWORD",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment without any configuration: each test sets what it reads."""
    for name in list(os.environ):
        if name in VARIABLES or name.startswith("METERING_"):
            monkeypatch.delenv(name)
    return monkeypatch


def _set(env: pytest.MonkeyPatch, variables: dict[str, str]) -> None:
    for name, value in variables.items():
        env.setenv(name, value)


def _value(settings: Settings, dotted: str) -> Any:
    value: Any = settings
    for part in dotted.split("."):
        value = getattr(value, part)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _errors(env: pytest.MonkeyPatch, variables: dict[str, str]) -> list[str]:
    _set(env, variables)
    with pytest.raises(ValidationError) as caught:
        Settings()
    return problems(caught.value)


def test_every_variable_reaches_its_field(env: pytest.MonkeyPatch) -> None:
    assert set(FULL) == set(VARIABLES)
    assert {".".join(path) for path in VARIABLES.values()} == set(EXPECTED)
    _set(env, FULL)
    settings = Settings()
    assert {dotted: _value(settings, dotted) for dotted in EXPECTED} == EXPECTED


def test_settings_env_gives_a_child_process_the_same_settings(env: pytest.MonkeyPatch) -> None:
    _set(env, FULL)
    settings = Settings()
    for name in FULL:
        env.delenv(name)
    _set(env, settings_env(settings))
    assert Settings() == settings


def test_without_variables_the_defaults_apply(env: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.kafka.bootstrap_servers is None and settings.clickhouse.url is None
    assert settings.kafka.partitions == 4 and settings.http.port == 8080
    assert settings.http.ready_peers == [] and settings.http.api_key is None
    assert settings.limits.max_record_bytes == MAX_RECORD_BYTES
    assert settings.http.ingest_processes == available_cores() >= 1


def test_an_empty_variable_is_unset(env: pytest.MonkeyPatch) -> None:
    _set(env, {"CLICKHOUSE_URL": "", "KAFKA_BOOTSTRAP_SERVERS": "", "METERING_API_KEY": "", "METERING_READY_PEERS": ""})
    settings = Settings()
    assert settings.clickhouse.url is None and settings.kafka.bootstrap_servers is None
    assert settings.http.api_key is None and settings.http.ready_peers == []


def test_a_mistyped_variable_is_an_error_that_names_it(env: pytest.MonkeyPatch) -> None:
    assert _errors(env, {"METERING_PARTITONS": "8"}) == [
        "METERING_PARTITONS: not a setting (did you mean METERING_PARTITIONS?)"
    ]


def test_a_bad_value_names_its_variable_and_the_reason(env: pytest.MonkeyPatch) -> None:
    (error,) = _errors(env, {"METERING_HTTP_PORT": "eighty"})
    assert error.startswith("METERING_HTTP_PORT='eighty': ") and "valid integer" in error


def test_the_ingest_process_count_is_at_least_one(env: pytest.MonkeyPatch) -> None:
    (error,) = _errors(env, {"METERING_INGEST_PROCESSES": "0"})
    assert error.startswith("METERING_INGEST_PROCESSES='0': ") and "greater than or equal to 1" in error
    (error,) = _errors(env, {"METERING_INGEST_PROCESSES": "two"})
    assert error.startswith("METERING_INGEST_PROCESSES='two': ") and "valid integer" in error


def test_the_default_process_count_follows_the_cpus_the_process_may_use(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3, 4, 5, 6, 7})
    assert available_cores(tmp_path) == 8  # no cgroup files: the affinity mask
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert available_cores(tmp_path) == 8  # cgroup v2 without a quota
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert available_cores(tmp_path) == 2  # a quota of 1.5 CPUs: two processes share it
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert available_cores(tmp_path) == 1
    (tmp_path / "cpu.max").write_text("2000000 100000\n")
    assert available_cores(tmp_path) == 8  # a quota above the mask does not add cores
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert available_cores(tmp_path) == 8  # cgroup v1 without a quota
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    assert available_cores(tmp_path) == 3
    env.setattr("services.infra.cores.CGROUP", tmp_path)
    assert Settings().http.ingest_processes == 3


def test_every_error_is_reported_at_once(env: pytest.MonkeyPatch) -> None:
    errors = _errors(env, {
        "METERING_PARTITIONS": "0", "METERING_LOCAL_DEMO": "perhaps", "METERING_GRACE_SECONDS": "-1",
        "METERING_MAX_RECORD_BYTES": str(MAX_RECORD_BYTES + 1), "METERING_TOPIC_PREFX": "x.",
        "METERING_CLICKHOUSE_DATABASE": "billing; DROP TABLE x",
    })
    assert sorted(error.split(":")[0].split("=")[0] for error in errors) == [
        "METERING_CLICKHOUSE_DATABASE", "METERING_GRACE_SECONDS", "METERING_LOCAL_DEMO", "METERING_MAX_RECORD_BYTES",
        "METERING_PARTITIONS", "METERING_TOPIC_PREFX",
    ]


def test_an_unknown_variable_never_shows_its_value(env: pytest.MonkeyPatch) -> None:
    # A mistyped secret must not end up in a terminal or a log.
    (error,) = _errors(env, {"METERING_API_KY": "topsecret"})
    assert "topsecret" not in error and "METERING_API_KEY" in error


def test_variables_read_elsewhere_and_other_programs_variables_are_accepted(env: pytest.MonkeyPatch) -> None:
    _set(env, dict.fromkeys(OTHER_VARIABLES, "1") | {"KAFKA_HEAP_OPTS": "-Xmx1g", "CLICKHOUSE_DB": "x"})
    Settings()


def test_variables_are_upper_case_as_everywhere_else(env: pytest.MonkeyPatch) -> None:
    assert _errors(env, {"METERING_partitions": "8"})[0].startswith("METERING_partitions: not a setting")


def test_code_cannot_pass_an_unknown_setting_either() -> None:
    with pytest.raises(ValidationError, match="partitons"):
        KafkaSettings(partitons=2)  # type: ignore[call-arg]


def test_updated_changes_only_what_it_names_and_validates_it(env: pytest.MonkeyPatch) -> None:
    _set(env, FULL)
    settings = Settings()
    copy = settings.updated(data_dir=Path("/elsewhere"), kafka={"partitions": 2}, http={"ready_peers": []})
    assert (copy.data_dir, copy.kafka.partitions, copy.http.ready_peers) == (Path("/elsewhere"), 2, [])
    assert copy.kafka.topic_prefix == "prod." and copy.clickhouse == settings.clickhouse
    assert settings.kafka.partitions == 8  # the original is unchanged
    with pytest.raises(ValidationError, match="partitons"):
        settings.updated(kafka={"partitons": 2})
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        settings.updated(kafka={"partitions": 0})


def test_the_description_masks_secrets_and_shows_everything_else(env: pytest.MonkeyPatch) -> None:
    _set(env, FULL | {"METERING_AGGREGATOR_URL": "http://reader:hunter2@aggregator:9081"})
    lines = describe(Settings())
    text = "\n".join(lines)
    assert "s3cret-key" not in text and "pa55" not in text and "hunter2" not in text
    assert "METERING_API_KEY=********" in lines
    assert "CLICKHOUSE_URL=https://metering:********@clickhouse:8443/" in lines
    assert "METERING_AGGREGATOR_URL=http://reader:********@aggregator:9081" in lines
    assert "METERING_READY_PEERS=http://a:9081/readyz,http://b:9082/readyz" in lines
    assert "METERING_PARTITIONS=8" in lines and "# kafka" in lines


def test_the_description_says_what_is_unset(env: pytest.MonkeyPatch) -> None:
    lines = describe(Settings())
    assert "# KAFKA_BOOTSTRAP_SERVERS is unset" in lines and "# METERING_API_KEY is unset" in lines


NAME = re.compile(r"\b(METERING_[A-Z0-9_]+|KAFKA_BOOTSTRAP_SERVERS|CLICKHOUSE_URL)\b")
DOCUMENTED = ["README.md", "Dockerfile", "Makefile", "docs", "deploy", "services", "examples", "bench", "scripts"]


def test_every_variable_the_repository_mentions_exists() -> None:
    """The README, docs, manifests and code name only variables something reads."""
    known = set(VARIABLES) | set(OTHER_VARIABLES) | GRAFANA_VARIABLES
    unknown = []
    for entry in DOCUMENTED:
        path = ROOT / entry
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            if file.suffix in {".png", ".pyc"} or "__pycache__" in file.parts:
                continue
            for name in NAME.findall(file.read_text(errors="replace")):
                if name not in known:
                    unknown.append(f"{file.relative_to(ROOT)}: {name}")
    assert unknown == []


# A read by name: through os.environ.get, os.environ.pop, os.environ[...] or os.getenv.
READ = re.compile(r"""(?:environ(?:\.get\(|\.pop\(|\[)|getenv\()\s*["'](METERING_[A-Z0-9_]+)["']""")


def test_every_variable_the_code_or_the_tests_read_is_accepted() -> None:
    """A test's own variable (METERING_FUZZ_SEED=...) reaches the stack's children, whose
    Settings would refuse it as a typo unless it is known."""
    known = set(VARIABLES) | set(OTHER_VARIABLES)
    read = {
        f"{path.relative_to(ROOT)}: {name}"
        for folder in ("services", "bench", "scripts", "tests", "examples")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for name in READ.findall(path.read_text())
    }
    assert any(entry.endswith(": METERING_FAULT_FILE") for entry in read)  # the pattern finds reads
    assert sorted(entry for entry in read if entry.rpartition(": ")[2] not in known) == []
