"""Shared fixtures: the real embedded broker (Tansu) and both databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
#: the sample feeds and their truth live in the project; ../shared (when beside it) is the upstream copy
SAMPLES = ROOT / "hub" / "samples"
TRUTH = ROOT / "tests" / "data" / "samples.truth.json"
SHARED_SAMPLES = SHARED / "agency-systems" / "samples"
SHARED_TRUTH = SHARED / "agency-systems" / "samples.truth.json"
PG_URL = os.environ.get("TSUNAGU_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _tree_drift(ours: Path, upstream: Path) -> list[str]:
    """Relative paths that differ between two folders (missing on either side or different bytes).

    The project may add whole folders of its own (``registry_std/``); inside the feeds' folders that
    upstream has, both sides must hold the same files.
    """

    def files(root: Path) -> dict[str, bytes]:
        return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()}

    a, b = files(ours), files(upstream)
    shared_tops = {Path(k).parts[0] for k in b}
    a = {k: v for k, v in a.items() if Path(k).parts[0] in shared_tops}
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def _check_upstream(ours: Path, upstream: Path) -> None:
    """In CI, fail when the project's copy has drifted from ../shared's (when ../shared is there)."""
    if not os.environ.get("CI") or not upstream.exists():
        return
    if ours.is_dir():
        drift = _tree_drift(ours, upstream)
    else:
        drift = [] if ours.read_bytes() == upstream.read_bytes() else [ours.name]
    if drift:
        pytest.fail(
            f"{ours.relative_to(ROOT)} differs from {upstream} ({', '.join(drift[:10])}): copy the upstream files in"
        )


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The sample feeds shipped in hub/samples (in CI also checked against ../shared's copy)."""
    if not SAMPLES.is_dir():
        pytest.fail(f"{SAMPLES} is missing: the sample feeds are part of the project")
    _check_upstream(SAMPLES, SHARED_SAMPLES)
    return SAMPLES


@pytest.fixture(scope="session")
def truth() -> dict:
    """The sample feeds' truth, tests/data/samples.truth.json (in CI also checked against ../shared's copy)."""
    import json

    if not TRUTH.exists():
        pytest.fail(f"{TRUTH} is missing: the sample truth is part of the project")
    _check_upstream(TRUTH, SHARED_TRUTH)
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
