"""Configuration from the environment (``TSUNAGU_`` prefix) with pydantic-settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: a feed's expected interval when TSUNAGU_FEED_EXPECTED_INTERVAL_S does not name it
DEFAULT_EXPECTED_INTERVAL_S = 86400.0


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
    #: a stage's poll when nothing is buffered: it waits this long for records, and FastStream then sleeps as long
    #: again before the next poll, so an idle stage picks up a new record up to about twice this late
    batch_timeout_ms: int = Field(default=50, ge=1)
    #: how long the broker may be unreachable before a batch run gives up (it retries with capped, jittered
    #: backoff until then; resuming with the same --state continues); service mode never gives up
    broker_outage_s: float = Field(default=600.0, gt=0)
    #: how long to try reaching the broker at start before a one-line "cannot reach" error
    broker_connect_s: float = Field(default=30.0, gt=0)
    #: the 障害者相談支援 vendor database (read-only), e.g. postgresql+psycopg://reader@shogai-db/soudan;
    #: empty → ``shogai/soudan.sqlite`` under the sources folder when present
    shogai_database_url: str = ""
    #: the municipality's 外字 table (``code<TAB>character`` lines): private-use characters of the
    #: registry mapped to standard ones for matching keys; empty = none (外字 then neither match nor break)
    private_use_map: str = ""
    #: municipality code (全国地方公共団体コード) used in FHIR identifiers
    municipality_code: str = "999999"
    #: HMAC secret of the kodomo webhook; empty → ``tsunagu serve`` refuses to start (the demo and the batch
    #: replay of a ``kodomo/`` folder use the public sample secret instead)
    kodomo_webhook_secret: SecretStr = SecretStr("")
    #: while the shared secret is being rotated: deliveries signed with this old secret are accepted too
    kodomo_webhook_secret_previous: SecretStr = SecretStr("")
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
    # -- the coordinators' workspace (hub.workspace) ------------------------------------------
    #: a login session ends after this many minutes without a request
    web_session_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    #: and after this many hours whatever happens
    web_session_max_hours: int = Field(default=12, ge=1, le=72)
    #: this many failed logins in a row lock the account …
    web_lockout_failures: int = Field(default=5, ge=1, le=100)
    #: … for this many minutes
    web_lockout_minutes: int = Field(default=15, ge=1, le=24 * 60)
    #: cookies carry the Secure flag: true / false; unset → when the request came over https
    web_secure_cookies: bool | None = None
    #: key signing the login form's pre-session CSRF cookie; empty → a random key per process
    web_secret_key: SecretStr = SecretStr("")
    #: the workspace's public address, for links in notifications (e.g. https://tsunagu.example.lg.jp)
    web_base_url: str = "http://127.0.0.1:8080"
    #: a referral nobody accepted within this many days is overdue
    referral_overdue_days: int = Field(default=14, ge=1, le=365)
    #: notifications: webhook URL (POST JSON) and/or SMTP; empty → that channel is off. The same URL receives
    #: the workspace's notifications and the health loop's alerts (JSON without personal data)
    notify_webhook_url: str = ""
    notify_smtp_host: str = ""
    notify_smtp_port: int = Field(default=25, ge=1, le=65535)
    notify_mail_from: str = ""
    notify_mail_to: list[str] = []
    notify_smtp_starttls: bool = False
    notify_smtp_username: str = ""
    notify_smtp_password: SecretStr = SecretStr("")
    #: HMAC-SHA256 of the webhook body in the header X-Tsunagu-Signature; empty → unsigned
    notify_webhook_secret: SecretStr = SecretStr("")
    #: service mode: seconds between the workspace's periodic rounds (referral sync, notifications)
    notify_interval_s: float = Field(default=60.0, gt=0)

    # -- Kafka client security (every client: FastStream/aiokafka, kafka-python producers, admin, lag readers);
    #    the embedded broker is always PLAINTEXT
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = ""
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")
    #: PEM file of the CA that signed the brokers' certificates; None → the system's CAs
    kafka_ssl_cafile: Path | None = None

    # -- operations (issue 12)
    #: feed → the longest normal gap between two deliveries, in seconds (JSON); a feed not named: 86400
    feed_expected_interval_s: dict[str, float] = {}
    #: Fernet key sealing dead letters' original bytes (``tsunagu deadletter key`` makes one); empty → the
    #: originals are not kept
    deadletter_key: SecretStr = SecretStr("")
    #: health rules: a consumer lag / outbox that grew on this many consecutive checks raises an ops alert
    health_growth_checks: int = Field(default=3, ge=2, le=100)
    #: health rules: dead letters per minute (all stages) above which an ops alert is raised
    health_dead_letter_rate_per_min: float = Field(default=10.0, gt=0)
    #: health rules: seconds between two evaluations in ``tsunagu serve``
    health_interval_s: float = Field(default=30.0, gt=0)

    def expected_interval_s(self, feed: str) -> float:
        """The stalled-feed threshold of one feed (TSUNAGU_FEED_EXPECTED_INTERVAL_S, default one day)."""
        return float(self.feed_expected_interval_s.get(feed, DEFAULT_EXPECTED_INTERVAL_S))

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
