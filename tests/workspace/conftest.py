"""Workspace fixtures: a migrated database (blank, or seeded by one real `tsunagu run` over hub/samples), clients."""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from workspace.support import BUNDLED_SAMPLES, Workspace, add_users, make_workspace

from hub.migrate import upgrade
from hub.settings import Settings


@pytest.fixture
def blank_db(tmp_path: Path) -> str:
    """A migrated, empty SQLite database (URL)."""
    url = f"sqlite:///{tmp_path / 'hub.sqlite'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def seeded_state(kafka: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """One real `tsunagu run` over the bundled samples (embedded broker, SQLite); the pristine database URL.

    Do not write to it: tests that change state take ``seeded_db`` (a copy of their own).
    """
    from hub.run.batch import batch_run

    rid = uuid.uuid4().hex[:8]
    settings = Settings(kafka_bootstrap=kafka, topic_prefix=f"ws{rid}", hub_group=f"ws-{rid}", partitions=3,
                        session_timeout_ms=1000, heartbeat_interval_ms=100, fetch_max_wait_ms=10)
    state = tmp_path_factory.mktemp("ws-state")
    batch_run(BUNDLED_SAMPLES, tmp_path_factory.mktemp("ws-export"), settings=settings, state=state, progress=None)
    db = state / "hub.sqlite"
    with sqlite3.connect(db) as con:  # fold the WAL in, so a plain file copy is the whole database
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return f"sqlite:///{db}"


@pytest.fixture
def seeded_db(seeded_state: str, tmp_path: Path) -> str:
    """A private copy of the seeded database (URL), free to change."""
    src = Path(seeded_state.removeprefix("sqlite:///"))
    dst = tmp_path / "hub.sqlite"
    shutil.copyfile(src, dst)
    return f"sqlite:///{dst}"


def _workspace(url: str) -> Iterator[Workspace]:
    ws = make_workspace(url)
    add_users(ws.sessions)
    try:
        yield ws
    finally:
        for c in ws.clients:
            c.close()
        engine = ws.sessions.kw["bind"]
        engine.dispose()


@pytest.fixture
def workspace(blank_db: str) -> Iterator[Workspace]:
    """The workspace over a blank database with one user per role (password ``PASSWORD``)."""
    yield from _workspace(blank_db)


@pytest.fixture
def seeded_workspace(seeded_db: str) -> Iterator[Workspace]:
    """The workspace over a copy of the seeded database with one user per role."""
    yield from _workspace(seeded_db)

