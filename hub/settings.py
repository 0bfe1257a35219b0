"""Configuration from the environment (``TSUNAGU_`` prefix) with pydantic-settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TSUNAGU_", env_file=".env", extra="ignore")

    #: bootstrap servers of an external Kafka cluster; empty → start the embedded Tansu broker
    kafka_bootstrap: str = ""
    #: SQLAlchemy URL of the hub's store; empty → SQLite file in the state folder
    database_url: str = ""
    #: where the embedded default keeps its SQLite files, checkpoints and offsets
    state_dir: Path | None = None
    #: topic prefix, so several municipalities or environments can share one cluster
    topic_prefix: str = "tsunagu"
    partitions: int = Field(default=6, ge=1, le=256)
    replication_factor: int = Field(default=1, ge=1, le=5)
    #: consumer group of the hub; all hub instances of one deployment share it
    hub_group: str = "tsunagu-hub"
    #: group join: Tansu takes about half the session timeout to finish a join
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 500
    fetch_max_wait_ms: int = 10
    #: how long the broker may be unreachable before a batch run gives up (it retries with capped, jittered
    #: backoff until then; resuming with the same --state continues); service mode never gives up
    broker_outage_s: float = Field(default=600.0, gt=0)
    #: how long to try reaching the broker at start before a one-line "cannot reach" error
    broker_connect_s: float = Field(default=30.0, gt=0)
    #: the 障害者相談支援 vendor database (read-only), e.g. postgresql+psycopg://reader@shogai-db/soudan;
    #: empty → ``shogai/soudan.sqlite`` under the sources folder when present
    shogai_database_url: str = ""
    #: municipality code (全国地方公共団体コード) used in FHIR identifiers
    municipality_code: str = "999999"
    #: HMAC secret of the kodomo webhook; empty → ``tsunagu serve`` refuses to start (the demo and the batch
    #: replay of a ``kodomo/`` folder use the public sample secret instead)
    kodomo_webhook_secret: SecretStr = SecretStr("")
    #: also accept the vendor's body-only signature (no delivery id / timestamp in the MAC): only where configured
    kodomo_legacy_signature: bool = False
    #: a signed timestamp older or newer than this many seconds is refused (replay window)
    kodomo_replay_window_s: float = Field(default=300, gt=0)
    #: largest webhook body read (413 beyond it, checked while reading)
    kodomo_max_body_bytes: int = Field(default=1_000_000, ge=1024)
    #: unauthenticated webhook failures per client address: burst, then this many per second (429 beyond)
    webhook_refused_rate_per_s: float = Field(default=1.0, gt=0)
    webhook_refused_burst: int = Field(default=10, ge=1)
    log_level: str = "INFO"
    #: consent API bearer tokens, token → role or "role:operator id" (``consent_officer`` or ``coordinator``;
    #: any other role is refused). From the environment as JSON: TSUNAGU_API_TOKENS='{"<token>":"consent_officer"}'
    api_tokens: dict[str, str] = {}
    #: service mode (``tsunagu serve``): seconds between polls of file folders and the shogai database
    poll_interval_s: float = Field(default=5.0, gt=0)
    #: service mode: the public listener (``POST /webhooks/kodomo`` and ``GET /healthz`` only);
    #: TSUNAGU_HTTP_HOST / TSUNAGU_HTTP_PORT are deprecated aliases
    webhook_host: str = Field(default="127.0.0.1",
                              validation_alias=AliasChoices("webhook_host", "TSUNAGU_WEBHOOK_HOST", "http_host",
                                                            "TSUNAGU_HTTP_HOST"))
    webhook_port: int = Field(default=8080, ge=0, le=65535,
                              validation_alias=AliasChoices("webhook_port", "TSUNAGU_WEBHOOK_PORT", "http_port",
                                                            "TSUNAGU_HTTP_PORT"))
    #: service mode: the internal listener (``/ops``, ``/ops.json``, ``/metrics``, ``/healthz``); never public
    staff_host: str = "127.0.0.1"
    staff_port: int = Field(default=8081, ge=0, le=65535)
    #: when set, ``GET /metrics`` answers 401 unless ``Authorization: Bearer <token>``
    metrics_token: SecretStr = SecretStr("")
    #: key of the HMAC-SHA256 that signs the consent audit chain (audit.jsonl); empty → plain SHA-256 chain
    audit_hmac_key: SecretStr = SecretStr("")
    #: append-only file the audit chain's head is anchored to (``tsunagu audit verify --anchor``);
    #: empty → ``audit.anchor`` in the state folder. Keep it where the database writer cannot rewrite it.
    audit_anchor_path: Path | None = None
    #: service mode: seconds between two anchors of the audit head (an anchor is written only when it moved)
    audit_anchor_interval_s: float = Field(default=60.0, gt=0)
    #: alert thresholds (alerts.md: each is configurable)
    alert_multi_field_min_fields: int = Field(default=2, ge=2, le=4)

    @property
    def http_host(self) -> str:
        """Deprecated name of ``webhook_host``."""
        return self.webhook_host

    @property
    def http_port(self) -> int:
        """Deprecated name of ``webhook_port``."""
        return self.webhook_port

    def kodomo_replay_secret(self) -> str:
        """The secret the batch replay of a ``kodomo/`` folder checks files with (the sample secret when unset)."""
        return self.kodomo_webhook_secret.get_secret_value() or SAMPLE_KODOMO_SECRET


#: the public secret the bundled kodomo samples are signed with; never accepted by ``tsunagu serve``
SAMPLE_KODOMO_SECRET = "kodomo-sample-secret"


def get_settings() -> Settings:
    return Settings()
