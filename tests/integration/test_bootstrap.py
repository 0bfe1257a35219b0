"""The composition root (hub.bootstrap) on the real broker and both databases: what it builds, and that it closes."""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from sqlalchemy import func, inspect, select

from connectors.runner import OutboxRow
from hub.bootstrap import Database, open_runtime
from hub.pipeline.stages import HubCore
from hub.pipeline.tables import ProcessedEvent
from hub.settings import Settings

pytestmark = pytest.mark.broker


def test_database_open_applies_migrations_and_close_releases_connections(database_url: str) -> None:
    """Database.open leaves the hub's tables in place; close leaves no pooled connection open."""
    with Database.open(database_url) as db:
        with db.sessions() as s:
            assert s.scalar(select(func.count()).select_from(ProcessedEvent)) == 0
        tables = set(inspect(db.engine).get_table_names())
        assert {"processed_events", "persons", "consent_versions"} <= tables
    assert db.engine.pool.checkedin() == 0  # disposed: no idle connection kept open


def test_database_open_without_migrate_creates_nothing(tmp_path: Path) -> None:
    """migrate=False only connects: an empty SQLite file stays without tables."""
    db = Database.open(f"sqlite:///{tmp_path / 'empty.sqlite'}", migrate=False)
    try:
        assert inspect(db.engine).get_table_names() == []
    finally:
        db.close()


def test_open_runtime_builds_topics_database_core_and_connector_state(
    kafka: str, fast_settings: Settings, database_url: str, tmp_path: Path
) -> None:
    """One call gives the broker with every topic, a migrated database, the core on it and the connector state."""
    settings = fast_settings.model_copy(update={"kafka_bootstrap": kafka})
    with open_runtime(settings, tmp_path, database_url=database_url) as rt:
        assert rt.bootstrap == kafka and not rt.embedded
        assert rt.topics.prefix == settings.topic_prefix
        admin = KafkaAdminClient(bootstrap_servers=kafka, client_id="test-bootstrap")
        try:
            assert set(rt.topics.all()) <= set(admin.list_topics())
        finally:
            admin.close()
        assert isinstance(rt.core, HubCore) and rt.core.sessions is rt.sessions
        assert rt.database.url == database_url
        with rt.sessions() as s:
            assert s.scalar(select(func.count()).select_from(ProcessedEvent)) == 0
        with rt.connector_state.sessions() as s:
            assert s.scalar(select(func.count()).select_from(OutboxRow)) == 0
        engine = rt.database.engine
    assert engine.pool.checkedin() == 0  # disposed with the runtime
    assert (tmp_path / "connectors.sqlite").is_file()


def test_open_runtime_takes_the_core_type(kafka: str, fast_settings: Settings, tmp_path: Path) -> None:
    """A subclass of HubCore (the service's counting core) is built with the settings' alert settings."""

    class Marked(HubCore):
        pass

    settings = fast_settings.model_copy(update={"kafka_bootstrap": kafka, "alert_multi_field_min_fields": 4})
    with open_runtime(settings, tmp_path, core_type=Marked) as rt:
        assert type(rt.core) is Marked
        assert rt.core.alert_settings.multi_field_min_fields == 4
        assert rt.database.url == f"sqlite:///{tmp_path / 'hub.sqlite'}"
