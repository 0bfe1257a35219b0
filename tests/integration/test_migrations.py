"""Alembic migrations create exactly the tables the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

import hub.identity.tables  # registers identity tables
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


def test_0006_rekeys_stored_names_and_splits_registry_names(database_url: str) -> None:
    """Rows keyed before NFC and variation selectors get new name and folded keys, residents their name parts."""
    from sqlalchemy import text

    upgrade(database_url, "0003")
    engine = create_engine(database_url)
    old_key = "\ufa26築\U000e0100邊太郎"  # 都 as a compatibility ideograph, a variation selector, 邊
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO persons (id, created_by, created_at) VALUES ('p-1', 'r', :t)"),
                         {"t": "2026-01-01 00:00:00+00:00"})
            conn.execute(text("INSERT INTO residents (resident_no, household_no, name, name_key, folded_key, person_id)"
                              " VALUES ('1000000001', '5000000001', :name, :key, :key, 'p-1')"),
                         {"name": "\ufa26築\U000e0100邊　太郎", "key": old_key})
            conn.execute(text("INSERT INTO person_records (record, person_id, feed, name_key, folded_key, updated_at)"
                              " VALUES ('kodomo:1', 'p-1', 'kodomo', :key, :key, :t)"),
                         {"key": old_key, "t": "2026-01-01 00:00:00+00:00"})
        upgrade(database_url)
        with engine.connect() as conn:
            res = conn.execute(text("SELECT name_key, folded_key, family_key, given_key, given_kana FROM residents"))
            assert tuple(res.one()) == ("都築邊太郎", "都築辺太郎", "都築邊", "太郎", None)
            rec = conn.execute(text("SELECT name_key, folded_key, family_key FROM person_records")).one()
            assert tuple(rec) == ("都築邊太郎", "都築辺太郎", None)
    finally:
        engine.dispose()
