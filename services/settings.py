"""Configuration, read once from the environment in each entrypoint and passed down.

Every service takes the same Settings so one environment describes one deployment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The largest record (key + value bytes) a service produces. Kafka's limit is 1,000,000
# bytes with the framing (librdkafka's default message.max.bytes, under the broker's
# 1 MiB default); the rest is headroom for framing and the dead-letter topic's headers.
MAX_RECORD_BYTES = 990_000


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="METERING_", extra="ignore")

    # Infrastructure: unset means "start/use the local defaults".
    kafka_bootstrap_servers: str | None = Field(
        default=None, validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS")
    )
    clickhouse_url: str | None = Field(default=None, validation_alias=AliasChoices("CLICKHOUSE_URL"))
    clickhouse_database: str = "metering"
    data_dir: Path = Path(".metering")

    topic_prefix: str = "metering."
    partitions: int = Field(default=4, ge=1)
    # 1 for the local broker; 3 on a production cluster (our topics and Faust's changelogs).
    replication_factor: int = Field(default=1, ge=1)
    consumer_group_prefix: str = "metering"

    # Where other services reach the aggregator's read API (the embedded store's owner);
    # unset: the local aggregator on aggregator_port.
    aggregator_url: str | None = None

    http_host: str = "127.0.0.1"
    http_port: int = 8080
    aggregator_port: int = 8081
    rater_port: int = 8082
    api_key: SecretStr | None = None
    local_demo: bool = False

    # Event time (seconds). Tests and the demo shorten these.
    allowed_lateness_seconds: float = Field(default=60.0, ge=0)
    grace_seconds: float = Field(default=3600.0, ge=0)
    idle_seconds: float = Field(default=30.0, gt=0)
    dedup_window_days: int = Field(default=35, ge=1)
    max_future_seconds: float = 300.0

    # Readiness URLs the ingest service also checks, so its /readyz covers the pipeline.
    ready_peers: str = ""

    # The aggregator stops when more than this share of at least `min` records in a
    # minute is dead-lettered: that is a bad deploy, not bad input.
    dead_letter_max_ratio: float = Field(default=0.5, gt=0, le=1)
    dead_letter_min_records: int = Field(default=1000, ge=1)
    # Consumer-group liveness (seconds); tests shorten it so rebalances are quick.
    session_timeout_seconds: float = Field(default=30.0, gt=0)
    housekeeping_seconds: float = Field(default=60.0, gt=0)

    batch_limit: int = Field(default=10_000, ge=1)
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    # A measurement or catalog entity whose record would exceed this is refused (413)
    # before anything is produced; lower it only (tests do), never above MAX_RECORD_BYTES.
    max_record_bytes: int = Field(default=MAX_RECORD_BYTES, ge=1024, le=MAX_RECORD_BYTES)

    @model_validator(mode="after")
    def _has_api_key_or_is_demo(self) -> "Settings":
        if self.api_key is not None and not self.api_key.get_secret_value():
            self.api_key = None
        return self

    @property
    def chdb_path(self) -> Path:
        return self.data_dir / "clickhouse"

    def require_api_key(self) -> None:
        """The ingest service refuses to start open to the world unless told it is a demo."""
        if self.api_key is None and not self.local_demo:
            raise SystemExit(
                "METERING_API_KEY is not set. Set it, or set METERING_LOCAL_DEMO=true "
                "to run without authentication on a local machine."
            )


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process build the same Settings."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if name == "kafka_bootstrap_servers":
            env["KAFKA_BOOTSTRAP_SERVERS"] = str(value)
        elif name == "clickhouse_url":
            env["CLICKHOUSE_URL"] = str(value)
        elif name == "api_key":
            assert settings.api_key is not None
            env["METERING_API_KEY"] = settings.api_key.get_secret_value()
        else:
            env[f"METERING_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return env
