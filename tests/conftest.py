"""Shared fixtures: the real embedded broker (Tansu) and both databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SAMPLES = SHARED / "agency-systems" / "samples"
if not SAMPLES.exists():  # a checkout without ../shared: the copy the demo ships
    SAMPLES = ROOT / "hub" / "samples"
TRUTH = SHARED / "agency-systems" / "samples.truth.json"
PG_URL = os.environ.get("TSUNAGU_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def truth() -> dict:
    import json

    if not TRUTH.exists():
        if os.environ.get("CI"):
            pytest.fail("../shared/agency-systems/samples.truth.json is required in CI")
        pytest.skip("samples.truth.json not found beside the repository")
    return json.loads(TRUTH.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def kafka() -> Iterator[str]:
    """A real Kafka-protocol broker for the whole session: the embedded Tansu."""
    from hub.kafka.broker import EmbeddedBroker

    broker = EmbeddedBroker().start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


def _pg_available() -> bool:
    try:
        import sqlalchemy as sa

        eng = sa.create_engine(PG_URL)
        with eng.connect() as c:
            c.execute(sa.text("select 1"))
        eng.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_available() -> bool:
    return _pg_available()


@pytest.fixture
def pg_database(pg_available: bool) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (created in the server, dropped after)."""
    if not pg_available:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL at 127.0.0.1:5432 is required in CI")
        pytest.skip("PostgreSQL at 127.0.0.1:5432 not reachable")
    import sqlalchemy as sa

    name = f"tsunagu_t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Both stores the hub supports: a SQLite file and a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.sqlite'}"
    return request.getfixturevalue("pg_database")


@pytest.fixture
def fast_settings():
    """Settings tuned for Tansu in tests: short group joins, short fetch waits, unique names."""
    from hub.settings import Settings

    rid = uuid.uuid4().hex[:8]
    return Settings(
        topic_prefix=f"t{rid}",
        hub_group=f"hub-{rid}",
        partitions=3,
        session_timeout_ms=1000,
        heartbeat_interval_ms=100,
        fetch_max_wait_ms=10,
    )
