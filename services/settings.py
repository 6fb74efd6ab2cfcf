"""Configuration, read once from the environment in each entrypoint and passed down.

Every service takes the same Settings so one environment describes one deployment.
Settings are grouped per concern; every field names its environment variable as its
alias, so a variable the README, deploy/ or a test sets is found here by grep.

Any other METERING_* variable is refused by name: a mistyped variable would otherwise
be ignored without a word, and the service would run on a default nobody chose.
`metering check-config` prints the effective configuration or every error at once.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from services.infra.cores import available_cores

PREFIX = "METERING_"

# The largest record (key + value bytes) a service produces. Kafka's limit is 1,000,000
# bytes with the framing (librdkafka's default message.max.bytes, under the broker's
# 1 MiB default); the rest is headroom for framing and the dead-letter topic's headers.
MAX_RECORD_BYTES = 990_000
# A backlog is handled in slices of about this many bytes of records, each through the
# whole flush order. A slice pays once per series it touches (a total row, a state op) and
# once per store insert and state write: 8 MiB took 22 % less CPU per measurement than
# 2 MiB (4 interleaved runs each of bench.fold) for about 60 MB more at the peak; 16 MiB
# gained nothing more and took 150 MB more.
SLICE_BYTES = 8 * 1024 * 1024

# METERING_* variables that are not Settings: each is read where it is used, or only by
# tooling around the services. A metering process may inherit them, so they are not typos.
OTHER_VARIABLES = {
    "METERING_FAULT_FILE": "services/aggregator/faults.py: arms a crash point (tests only)",
    "METERING_FAUST_LOG_LEVEL": "services/aggregator/worker.py: Faust's own log level",
    "METERING_CACHE_DIR": "services/infra/kafka_broker.py: where the Kafka jars are cached",
    "METERING_TEST_DOCKER": "tests/conftest.py: run the tests against Docker containers",
    "METERING_SEEDS_DIR": "tests/unit/seed_schemas.py: where the reference seeds are",
    "METERING_FUZZ_SEED": "tests/e2e/test_kafka_fuzz.py: replays a fuzz run's seed",
    "METERING_STRESS": "tests/e2e/test_unique_count_scale.py: runs the stress sizes (make stress-unique)",
    "METERING_TOOLS_CACHE": "deploy/ci/install-ops-tools.sh: where the ops tools are cached",
    "METERING_IMAGE": "deploy/compose.yaml: the image tag to run",
}

_GROUP_CONFIG = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True)


def _empty_is_unset(value: Any) -> Any:
    # An empty variable (`CLICKHOUSE_URL=`) means "not configured", as if it were absent.
    return None if value == "" else value


class KafkaSettings(BaseModel):
    model_config = _GROUP_CONFIG

    # Unset: `metering up` starts a local broker; a single service refuses to start.
    bootstrap_servers: str | None = Field(default=None, alias="KAFKA_BOOTSTRAP_SERVERS")
    topic_prefix: str = Field(default="metering.", alias="METERING_TOPIC_PREFIX")
    partitions: int = Field(default=4, ge=1, alias="METERING_PARTITIONS")
    # 1 for the local broker; 3 on a production cluster (our topics and Faust's changelogs).
    replication_factor: int = Field(default=1, ge=1, alias="METERING_REPLICATION_FACTOR")
    consumer_group_prefix: str = Field(default="metering", alias="METERING_CONSUMER_GROUP_PREFIX")
    # Consumer-group liveness; tests shorten it so rebalances are quick.
    session_timeout_seconds: float = Field(default=30.0, gt=0, alias="METERING_SESSION_TIMEOUT_SECONDS")
    # A worker told to stop exits after this long even if its Kafka client has not let go
    # (services/infra/stop_deadline.py); below a pod's termination grace (30 s by default,
    # 60 in deploy/k8s/aggregator.yaml), so the worker's own last log lines are written.
    stop_grace_seconds: float = Field(default=25.0, gt=0, alias="METERING_STOP_GRACE_SECONDS")

    _unset_when_empty = field_validator("bootstrap_servers", mode="before")(_empty_is_unset)


class ClickHouseSettings(BaseModel):
    model_config = _GROUP_CONFIG

    # Unset: the embedded engine (chdb) under the data directory. May carry a password.
    url: str | None = Field(default=None, alias="CLICKHOUSE_URL")
    # A plain identifier: it is written into DDL, where it cannot be a query parameter.
    database: str = Field(
        default="metering", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", alias="METERING_CLICKHOUSE_DATABASE"
    )

    _unset_when_empty = field_validator("url", mode="before")(_empty_is_unset)


class HttpSettings(BaseModel):
    model_config = _GROUP_CONFIG

    host: str = Field(default="127.0.0.1", alias="METERING_HTTP_HOST")
    port: int = Field(default=8080, ge=1, le=65535, alias="METERING_HTTP_PORT")
    aggregator_port: int = Field(default=8081, ge=1, le=65535, alias="METERING_AGGREGATOR_PORT")
    rater_port: int = Field(default=8082, ge=1, le=65535, alias="METERING_RATER_PORT")
    # Where other services reach the aggregator's read API (the embedded store's owner);
    # unset: the local aggregator on aggregator_port.
    aggregator_url: str | None = Field(default=None, alias="METERING_AGGREGATOR_URL")
    # Readiness URLs the ingest service also checks, so its /readyz covers the pipeline.
    # In the environment: comma-separated.
    ready_peers: list[str] = Field(default_factory=list, alias="METERING_READY_PEERS")
    api_key: SecretStr | None = Field(default=None, alias="METERING_API_KEY")
    local_demo: bool = Field(default=False, alias="METERING_LOCAL_DEMO")
    # Processes serving the ingest port (services/ingest/process_group.py). The default is
    # the CPUs this process may use; set it where that is not what the host grants
    # (Kubernetes: the pod's CPU request).
    ingest_processes: int = Field(default_factory=available_cores, ge=1, alias="METERING_INGEST_PROCESSES")

    _unset_when_empty = field_validator("aggregator_url", "api_key", mode="before")(_empty_is_unset)

    @field_validator("ready_peers", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [url.strip() for url in value.split(",") if url.strip()]
        return value


class EventTimeSettings(BaseModel):
    """Seconds unless named otherwise. Tests and the demo shorten these."""

    model_config = _GROUP_CONFIG

    allowed_lateness_seconds: float = Field(default=60.0, ge=0, alias="METERING_ALLOWED_LATENESS_SECONDS")
    grace_seconds: float = Field(default=3600.0, ge=0, alias="METERING_GRACE_SECONDS")
    idle_seconds: float = Field(default=30.0, gt=0, alias="METERING_IDLE_SECONDS")
    max_future_seconds: float = Field(default=300.0, ge=0, alias="METERING_MAX_FUTURE_SECONDS")
    dedup_window_days: int = Field(default=35, ge=1, alias="METERING_DEDUP_WINDOW_DAYS")
    # How often the aggregator forgets ids older than the dedup window.
    housekeeping_seconds: float = Field(default=60.0, gt=0, alias="METERING_HOUSEKEEPING_SECONDS")


class LimitSettings(BaseModel):
    model_config = _GROUP_CONFIG

    batch_limit: int = Field(default=10_000, ge=1, alias="METERING_BATCH_LIMIT")
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, alias="METERING_MAX_BODY_BYTES")
    # A measurement or catalog entity whose record would exceed this is refused (413)
    # before anything is produced; lower it only (tests do), never above MAX_RECORD_BYTES.
    max_record_bytes: int = Field(
        default=MAX_RECORD_BYTES, ge=1024, le=MAX_RECORD_BYTES, alias="METERING_MAX_RECORD_BYTES"
    )
    # Deduplication memory (services/aggregator/dedup.py), whatever the ids in the window:
    # a Bloom filter per owned partition (16 MiB: a false positive, i.e. a store lookup,
    # about once in 100,000 new ids at 5,000,000 ids per partition) and the latest ids.
    # Where the aggregator keeps the ids of the dedup window (services/aggregator/dedup.py):
    # "store" (bounded memory; needs one store shared by every worker), "state-log" (every
    # id in memory and in the state log; any number of workers, each with its own
    # embedded store), "auto": "store" with a ClickHouse server, "state-log" without.
    dedup_ids: Literal["auto", "store", "state-log"] = Field(default="auto", alias="METERING_DEDUP_IDS")
    dedup_filter_mib: int = Field(default=16, ge=1, le=1024, alias="METERING_DEDUP_FILTER_MIB")
    dedup_recent_ids: int = Field(default=200_000, ge=1, alias="METERING_DEDUP_RECENT_IDS")
    # The aggregator takes a backlog through the flush order in slices of about this many
    # bytes of records (services/aggregator/worker.py says why 8 MiB); tests lower it so
    # that a few hundred records make many slices.
    aggregator_slice_bytes: int = Field(default=SLICE_BYTES, ge=1024, alias="METERING_AGGREGATOR_SLICE_BYTES")


GROUPS: dict[str, type[BaseModel]] = {
    "kafka": KafkaSettings,
    "clickhouse": ClickHouseSettings,
    "http": HttpSettings,
    "event_time": EventTimeSettings,
    "limits": LimitSettings,
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True)

    # Local state: the local broker, Faust's tables, the embedded store, the stack's logs.
    data_dir: Path = Field(default=Path(".metering"), alias="METERING_DATA_DIR")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    clickhouse: ClickHouseSettings = Field(default_factory=ClickHouseSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    event_time: EventTimeSettings = Field(default_factory=EventTimeSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Arguments first, then the process environment; no .env or secrets files.
        return init_settings, _Environment(settings_cls)

    def updated(self, **changes: Any) -> Settings:
        """A validated copy with some values changed; a group's other fields keep theirs.

        `settings.updated(data_dir=path, kafka={"partitions": 2})`. Unlike model_copy, a
        misspelt or invalid change is an error here.
        """
        values = {name: getattr(self, name) for name in Settings.model_fields}
        for name, change in changes.items():
            group = GROUPS.get(name)
            values[name] = group.model_validate(getattr(self, name).model_dump() | change) if group else change
        # Every value is given, so the environment adds nothing (but an unknown METERING_* variable).
        return Settings(**values)

    @property
    def chdb_path(self) -> Path:
        return self.data_dir / "clickhouse"

    def require_api_key(self) -> None:
        """The ingest service refuses to start open to the world unless told it is a demo."""
        if self.http.api_key is None and not self.http.local_demo:
            raise SystemExit(
                "METERING_API_KEY is not set. Set it, or set METERING_LOCAL_DEMO=true "
                "to run without authentication on a local machine."
            )


def _variable_paths() -> dict[str, tuple[str, ...]]:
    """Every variable and where it goes: ("data_dir",) or (group, field)."""
    paths: dict[str, tuple[str, ...]] = {}
    for name, info in Settings.model_fields.items():
        group = GROUPS.get(name)
        leaves = {(name, leaf): field for leaf, field in group.model_fields.items()} if group else {(name,): info}
        for path, leaf_info in leaves.items():
            assert leaf_info.alias is not None, f"{'.'.join(path)} names no environment variable"
            assert leaf_info.alias not in paths, f"{leaf_info.alias} is used twice"
            paths[leaf_info.alias] = path
    return paths


VARIABLES = _variable_paths()


def _is_secret(variable: str) -> bool:
    path = VARIABLES[variable]
    model: type[BaseModel] = GROUPS[path[0]] if len(path) > 1 else Settings
    annotation = model.model_fields[path[-1]].annotation
    return SecretStr in (annotation, *get_args(annotation))


def _environment_values(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for variable, text in environ.items():
        path = VARIABLES.get(variable)
        if path is not None:
            target = values if len(path) == 1 else values.setdefault(path[0], {})
            target[variable] = text
        elif variable.startswith(PREFIX) and variable not in OTHER_VARIABLES:
            # Passed on as it is: extra="forbid" turns it into an error that names it.
            values[variable] = text
    return values


class _Environment(PydanticBaseSettingsSource):
    """Reads the variables by the names the fields declare (groups are not visible in them)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # Unused: __call__ reads the whole environment at once.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return _environment_values(os.environ)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process build the same Settings."""
    return {variable: _env_text(value) for variable, value in _values(settings) if value is not None}


def _values(settings: Settings) -> Iterator[tuple[str, Any]]:
    for variable, path in VARIABLES.items():
        value: Any = settings
        for part in path:
            value = getattr(value, part)
        yield variable, value


def _env_text(value: Any) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


# ------------------------------------------------------------------ check-config


MASK = "********"


def describe(settings: Settings) -> list[str]:
    """The effective configuration, one `VARIABLE=value` line each, secrets masked."""
    lines: list[str] = []
    group = None
    for variable, value in _values(settings):
        path = VARIABLES[variable]
        if len(path) > 1 and path[0] != group:
            group = path[0]
            lines.append(f"# {group}")
        if value is None:
            lines.append(f"# {variable} is unset")
        else:
            lines.append(f"{variable}={_masked(value)}")
    return lines


def _masked(value: Any) -> str:
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, list):
        return ",".join(_masked(item) for item in value)
    return _without_password(_env_text(value))


def _without_password(text: str) -> str:
    """A URL keeps its user and host but not its password; any other text is as it is."""
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    if parts.password is None:
        return text
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{MASK}@{host}"))


def problems(error: ValidationError) -> list[str]:
    """Every error, each naming its variable and why, without printing a secret."""
    found = []
    for detail in error.errors():
        variable = _variable_at(detail["loc"])
        if detail["type"] == "extra_forbidden":
            close = difflib.get_close_matches(variable, VARIABLES, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            found.append(f"{variable}: not a setting{hint}")
        else:
            found.append(f"{variable}={_shown_input(variable, detail['input'])}: {detail['msg']}")
    return found


def _variable_at(loc: tuple[int | str, ...]) -> str:
    for part in reversed(loc):
        if isinstance(part, str) and (part in VARIABLES or part.startswith(PREFIX)):
            return part
    return ".".join(map(str, loc)) or "settings"


def _shown_input(variable: str, value: Any) -> str:
    if variable in VARIABLES and _is_secret(variable):
        return MASK
    return repr(_masked(value)) if isinstance(value, str) else repr(value)
