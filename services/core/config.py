"""The one settings object, read from the environment (and `.env`) by api, scorer and CLI."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RETENTION_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None,
        validation_alias="DATABASE_URL",
        description="SQLAlchemy URL of PostgreSQL; unset means `retention run` starts an embedded one.",
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias="REDIS_URL",
        description="Redis URL; unset means `retention run` starts an embedded one.",
    )
    data_dir: Path = Field(default=Path(".data"), description="Where embedded servers keep data.")
    import_dir: Path = Field(
        default_factory=lambda data: data["data_dir"] / "imports",
        description="Where files uploaded to `POST /v1/imports` are kept for the worker, with "
        "their error reports; default `<data_dir>/imports`. The API and every worker must see "
        "the same directory (a shared volume when they run on different machines).",
    )
    import_max_bytes: int = Field(
        default=2 * 1024**3, gt=0, description="The largest file `POST /v1/imports` accepts."
    )
    host: str = "127.0.0.1"
    port: int = 8000
    default_currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    queue_name: str = Field(default="retention", description="arq queue and Redis key prefix.")
    db_pool_size: int = 10
    api_key_cache_seconds: float = Field(
        default=1.0, description="How long a verified API key is trusted before re-reading it."
    )
    idempotency_ttl_hours: int = 24
    log_level: str = Field(
        default="info",
        pattern=r"(?i)^(debug|info|warning|error|critical)$",
        description="The least severe log lines written (JSON, one per line, on stderr).",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="When set, `GET /metrics` needs `Authorization: Bearer <this token>`; "
        "otherwise it is open, like the health probes.",
    )
    metrics_dir: Path | None = Field(
        default=None,
        description="Where `retention serve --workers N` (N > 1) keeps each process's metric "
        "files (prometheus-client multiprocess mode); emptied at start. Default: a new "
        "temporary directory, removed when the server stops.",
    )
    worker_metrics_host: str = Field(
        default="127.0.0.1", description="Where `retention worker` serves its metrics."
    )
    worker_metrics_port: int = Field(
        default=9464,
        ge=0,
        le=65535,
        description="The port `retention worker` serves its metrics on; 0 serves none.",
    )
    rescore_hour: int = Field(
        default=2, ge=0, le=23, description="UTC hour of the daily rescoring of every customer."
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Allow webhook URLs that resolve to private or loopback addresses.",
    )
    webhook_timeout_seconds: float = Field(
        default=15.0, gt=0, le=60, description="A delivery succeeds on a 2xx within this time."
    )
    webhook_disable_after_hours: float = Field(
        default=120.0, gt=0, description="An endpoint failing every delivery this long is disabled."
    )
    webhook_secret_overlap_hours: float = Field(
        default=24.0, ge=0, description="How long a rotated-out secret still signs deliveries."
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Fernet keys (comma-separated, newest first) that encrypt webhook secrets at "
        "rest: the first encrypts, any decrypts. Unset: the key in `<data_dir>/secret.key`, "
        "which only `retention run` creates; without either the API and the worker refuse to "
        "start.",
    )
    rate_limit_per_minute: int = Field(
        default=6000,
        ge=0,
        description="Requests per minute per API key unless the key has its own limit; 0 = no "
        "limit for keys without one.",
    )
    max_body_bytes: int = Field(
        default=10 * 1024**2,
        gt=0,
        description="The largest request body, except `POST /v1/imports` (`import_max_bytes`).",
    )

    @property
    def worker_health_key(self) -> str:
        """The Redis key a live worker refreshes every few seconds (arq's health check)."""
        return f"{self.queue_name}:health-check"

    def require_database_url(self) -> str:
        if not self.database_url:
            raise RuntimeError("DATABASE_URL is not set")
        return self.database_url

    def require_redis_url(self) -> str:
        if not self.redis_url:
            raise RuntimeError("REDIS_URL is not set")
        return self.redis_url


@lru_cache
def get_settings() -> Settings:
    return Settings()
