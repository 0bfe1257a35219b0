"""Fixtures the integration tests share: a fresh hub database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.bootstrap import Database


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    """A migrated SQLite hub database of the test's own, closed afterwards."""
    db = Database.open(f"sqlite:///{tmp_path / 'hub.sqlite'}")
    try:
        yield db
    finally:
        db.close()
