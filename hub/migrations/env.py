"""Alembic environment: one migration history for the hub, identity and consent tables."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

import hub.identity.tables
import hub.pipeline.deadletters
import hub.pipeline.tables
import hub.workspace.models  # noqa: F401
from consent.store import metadata as consent_metadata
from hub.db import Base, make_engine

config = context.config
target_metadata = [Base.metadata, consent_metadata]


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    owned = connectable is None
    url = config.get_main_option("sqlalchemy.url") or ""
    if connectable is None and url.startswith("sqlite"):
        # the hub's SQLite engine: pysqlite's default would commit each CREATE TABLE at once, so a process
        # killed during the migrations left tables without their alembic_version (the next start then
        # failed on "table already exists"); with an explicit BEGIN the whole upgrade is one transaction
        connectable = make_engine(url)
    elif connectable is None:
        connectable = engine_from_config(config.get_section(config.config_ini_section, {}),
                                         prefix="sqlalchemy.", poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    if owned:
        connectable.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
