"""Composition root: settings and a state folder become a runtime (broker, database, topics, hub core, connector state).

Every way of running the hub starts here (``tsunagu run``, ``tsunagu serve``, ``tsunagu connector run``,
``tsunagu bench`` and the CLI commands that only need the database), so the startup sequence is written
once::

    with open_runtime(settings, state_dir) as rt:   # broker up, topics made, migrations applied
        HubService(rt.core, rt.settings, rt.bootstrap)
        ...                                         # on exit: connector state, database, broker closed

``open_kafka`` (broker and topics only) and ``Database.open`` (database only) are the two halves.
Which connector reads which folder is ``hub.wiring``'s job.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, TypeVar, overload

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from connectors.runner import ConnectorState
from hub.anchoring import audit_key_of
from hub.db import make_engine, make_sessionmaker
from hub.kafka.broker import ensure_topics, kafka_cluster
from hub.kafka.outage import retry_outage
from hub.migrate import database_url_for, upgrade
from hub.ops.deadletters import sealer_of
from hub.pipeline.alerts import AlertSettings
from hub.pipeline.stages import HubCore
from hub.settings import Settings
from hub.topics import Topics
from schemas.normalize import install_private_use_map as install_map
from schemas.normalize import parse_private_use_map

__all__ = ["Database", "KafkaEndpoint", "Runtime", "alert_settings", "make_core", "open_kafka", "open_runtime"]

CoreT = TypeVar("CoreT", bound=HubCore)


@dataclass
class Database:
    """One hub database: its URL, engine and sessionmaker; ``close`` disposes the engine's connections."""

    url: str
    engine: Engine
    sessions: sessionmaker[Session]

    @classmethod
    def open(cls, url: str, *, migrate: bool = True, audit_key: bytes | None = None) -> Database:
        """Connect to ``url``, first applying the Alembic migrations unless ``migrate`` is false;
        ``audit_key`` signs the audit entries appended through these sessions (HMAC-SHA256)."""
        if migrate:
            upgrade(url)
        engine = make_engine(url)
        return cls(url, engine, make_sessionmaker(engine, audit_key))

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


@dataclass(frozen=True)
class KafkaEndpoint:
    """The cluster the hub talks to (configured, or the embedded broker) and its topics, created."""

    bootstrap: str
    topics: Topics
    embedded: bool


@contextlib.contextmanager
def open_kafka(settings: Settings) -> Iterator[KafkaEndpoint]:
    """The configured cluster, or an embedded broker for the block's duration; every topic exists."""
    with kafka_cluster(settings) as bootstrap:
        topics = Topics(settings.topic_prefix)
        # an unreachable broker is retried for broker_connect_s, then one line (BrokerUnavailable), no traceback
        retry_outage(lambda: ensure_topics(bootstrap, topics, settings.partitions, settings.replication_factor),
                     what=f"connecting to {bootstrap}", give_up_after_s=settings.broker_connect_s)
        yield KafkaEndpoint(bootstrap, topics, embedded=not settings.kafka_bootstrap)


def alert_settings(settings: Settings) -> AlertSettings:
    return AlertSettings(multi_field_min_fields=settings.alert_multi_field_min_fields)


def make_core(settings: Settings, sessions: sessionmaker[Session], topics: Topics) -> HubCore:
    """The hub core (both stages' work) on ``sessions``, with the alert settings of ``settings`` and its dead
    letters' originals sealed with the dead-letter key of ``settings`` (when set)."""
    return HubCore(sessions, topics, alert_settings=alert_settings(settings), seal=sealer_of(settings))


@dataclass
class Runtime(Generic[CoreT]):
    """What a running hub is made of; built by ``open_runtime``, closed when its block ends."""

    settings: Settings
    state_dir: Path
    kafka: KafkaEndpoint
    database: Database
    core: CoreT
    connector_state: ConnectorState

    @property
    def bootstrap(self) -> str:
        return self.kafka.bootstrap

    @property
    def topics(self) -> Topics:
        return self.kafka.topics

    @property
    def embedded(self) -> bool:
        return self.kafka.embedded

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self.database.sessions


@overload
def open_runtime(settings: Settings, state_dir: Path, *,
                 database_url: str | None = None) -> AbstractContextManager[Runtime[HubCore]]: ...


@overload
def open_runtime(settings: Settings, state_dir: Path, *, database_url: str | None = None,
                 core_type: type[CoreT]) -> AbstractContextManager[Runtime[CoreT]]: ...


def open_runtime(settings: Settings, state_dir: Path, *, database_url: str | None = None,
                 core_type: type[HubCore] = HubCore) -> AbstractContextManager[Runtime[Any]]:
    """Broker and topics, the migrated database (``database_url``, else the settings' or ``<state>/hub.sqlite``),
    the hub core (of ``core_type``) and the connector state under ``state_dir``; closed in reverse order on exit."""
    return _runtime(settings, state_dir, database_url, core_type)


class ConfigError(ValueError):
    """A setting that names something unusable (one line for the operator, no personal data)."""


def install_private_use_map(settings: Settings) -> None:
    """Read ``TSUNAGU_PRIVATE_USE_MAP`` (the municipality's 外字 table) and make it the key functions' default."""
    if not settings.private_use_map:
        install_map({})
        return
    path = Path(settings.private_use_map)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"TSUNAGU_PRIVATE_USE_MAP: cannot read {path} ({type(exc).__name__})") from None
    try:
        install_map(parse_private_use_map(text))
    except ValueError as exc:
        raise ConfigError(f"TSUNAGU_PRIVATE_USE_MAP: {exc}") from None


@contextlib.contextmanager
def _runtime(settings: Settings, state_dir: Path, database_url: str | None,
             core_type: type[HubCore]) -> Iterator[Runtime[Any]]:
    install_private_use_map(settings)
    with open_kafka(settings) as kafka:
        database = Database.open(database_url or database_url_for(settings, state_dir),
                                 audit_key=audit_key_of(settings))
        try:
            cstate = ConnectorState.in_dir(state_dir)
            try:
                core = core_type(database.sessions, kafka.topics, alert_settings=alert_settings(settings),
                                 seal=sealer_of(settings))
                yield Runtime(settings, state_dir, kafka, database, core, cstate)
            finally:
                cstate.dispose()
        finally:
            database.close()
