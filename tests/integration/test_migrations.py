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


_KILL_AT = """
import os, signal, sys
import hub.db
from sqlalchemy import event

real = hub.db.make_engine
n = {"ddl": 0}
kill_at = int(sys.argv[2])

def make_engine(url):
    engine = real(url)

    @event.listens_for(engine, "after_cursor_execute")
    def _count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith(("CREATE", "ALTER", "INSERT INTO ALEMBIC_VERSION",
                                                   "UPDATE ALEMBIC_VERSION")):
            n["ddl"] += 1
            if n["ddl"] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
    return engine

hub.db.make_engine = make_engine
from hub.migrate import upgrade
upgrade(sys.argv[1])
"""


def test_a_kill_during_the_first_migration_leaves_nothing_behind(database_url: str) -> None:
    """SIGKILL after the 1st, 10th, 30th statement and after the version row of the first upgrade: the
    database is left untouched (no tables, no version) and the next upgrade succeeds."""
    import signal
    import subprocess
    import sys

    for kill_at in (1, 10, 30, 10_000):
        done = subprocess.run([sys.executable, "-c", _KILL_AT, database_url, str(kill_at)], check=False,
                              capture_output=True, text=True)
        if kill_at == 10_000:
            assert done.returncode == 0, done.stderr[-2000:]
            break
        assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
        engine = create_engine(database_url)
        try:
            left = set(inspect(engine).get_table_names()) - {"alembic_version"}
        finally:
            engine.dispose()
        assert left == set(), f"kill at statement {kill_at} left {sorted(left)}"
    upgrade(database_url)
    assert _diff(database_url) == []
