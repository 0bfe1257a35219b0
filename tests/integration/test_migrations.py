"""Alembic migrations create exactly the tables the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

import hub.identity.tables  # registers identity tables
import hub.pipeline.deadletters
import hub.pipeline.tables
import hub.workspace.models  # noqa: F401  (registers workspace tables)
from consent.store import metadata as consent_metadata
from hub.db import Base
from hub.migrate import alembic_config, upgrade


def _diff(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": False})
            diff = compare_metadata(ctx, [Base.metadata, consent_metadata])
    finally:
        engine.dispose()
    return [d for d in diff if not (isinstance(d, tuple) and d[0] == "remove_table" and d[1].name == "alembic_version")]


def test_upgrade_head_matches_the_models(database_url: str) -> None:
    """After `upgrade head` autogenerate finds nothing to add or drop: models and migrations agree."""
    upgrade(database_url)
    assert _diff(database_url) == []


def test_upgrade_is_idempotent_and_downgrade_removes_everything(database_url: str) -> None:
    """Upgrading twice is harmless, and downgrading to base leaves only Alembic's own table."""
    from alembic import command

    upgrade(database_url)
    upgrade(database_url)
    command.downgrade(alembic_config(database_url), "base")
    engine = create_engine(database_url)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
