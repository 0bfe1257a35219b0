"""Alembic environment: one migration history for the hub, identity and consent tables."""

from __future__ import annotations

from alembic import context

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
    """The whole upgrade (every pending revision and the ``alembic_version`` row) is one transaction.

    PostgreSQL has transactional DDL. SQLite has it too, but pysqlite only opens a transaction
    before INSERT/UPDATE/DELETE, so CREATE TABLE would commit on its own: ``hub.db.make_engine``
    turns that off and issues BEGIN itself. A kill at any moment of a migration leaves the
    database as it was before the upgrade started.
    """
    connectable = config.attributes.get("connection")
    engine = None
    if connectable is None:
        url = config.get_main_option("sqlalchemy.url")
        assert url is not None
        engine = connectable = make_engine(url)
    try:
        with connectable.connect() as connection:
            context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                              transaction_per_migration=False)
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
    finally:
        if engine is not None:
            engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
