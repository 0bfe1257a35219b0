"""The hub's SQLAlchemy declarative base and engine helpers (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from sqlalchemy import Engine, MetaData, create_engine, event, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

# one aware-datetime column type for every table of the hub's database (consent's tables too)
from consent.store import UTCDateTime

__all__ = ["NAMING", "Base", "UTCDateTime", "get_row", "make_engine", "make_sessionmaker", "prefetch"]

T = TypeVar("T")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn):  # type: ignore[no-untyped-def]
            # Two hub stages write concurrently; a deferred transaction that upgrades to a write
            # lock fails at once with "database is locked". IMMEDIATE waits for the lock instead.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def make_sessionmaker(engine: Engine, audit_key: bytes | None = None) -> sessionmaker[Session]:
    """Sessions on ``engine``; ``audit_key`` signs the audit entries they append (``consent.store.audit_key``)."""
    from consent.store import AUDIT_KEY_INFO

    info = {AUDIT_KEY_INFO: audit_key} if audit_key else {}
    return sessionmaker(engine, expire_on_commit=False, info=info)



# --------------------------------------------------------------------------- per-transaction read-ahead
def prefetch(session: Session, model: type[Any], keys: Iterable[str], *, chunk: int = 500) -> list[Any]:
    """Load the rows of ``model`` (single string primary key) with these keys in IN-list queries.

    The loaded rows are held by the session for its lifetime, so ``get_row`` finds them without SQL,
    and the keys not found are remembered as absent (until an object with that key is added).
    """
    wanted = sorted({k for k in keys if k})
    if not wanted:
        return []
    [pk] = sa_inspect(model).primary_key
    held: list[Any] = session.info.setdefault("tsunagu_held", [])
    absent: set[tuple[type[Any], str]] = session.info.setdefault("tsunagu_absent", set())
    found: list[Any] = []
    for i in range(0, len(wanted), chunk):
        part = wanted[i:i + chunk]
        rows: list[Any] = list(session.scalars(select(model).where(pk.in_(part))))
        found.extend(rows)
        have = {getattr(r, pk.key) for r in rows}
        absent.update((model, k) for k in part if k not in have)
    held.extend(found)
    return found


def get_row(session: Session, model: type[T], key: str) -> T | None:
    """``session.get`` that answers from the read-ahead: a key known absent costs no query, nor does a row
    added since (no flush needed to find it)."""
    absent = session.info.get("tsunagu_absent")
    if absent is not None:
        if (model, key) in absent:
            return None
        added = session.info.get("tsunagu_added", {}).get((model, key))
        if added is not None:
            state = sa_inspect(added)
            if (state.pending or state.persistent) and not state.deleted:
                return added  # type: ignore[no-any-return]
    return session.get(model, key)


_PK_ATTRS: dict[type[Any], tuple[str, ...]] = {}


@event.listens_for(Session, "transient_to_pending")
def _no_longer_absent(session: Session, instance: Any) -> None:
    absent = session.info.get("tsunagu_absent")
    if absent is not None:
        cls = type(instance)
        names = _PK_ATTRS.get(cls)
        if names is None:
            mapper = sa_inspect(cls)
            names = _PK_ATTRS[cls] = tuple(mapper.get_property_by_column(c).key for c in mapper.primary_key)
        keys = [getattr(instance, n) for n in names]
        for key in keys:
            absent.discard((cls, key))
        if len(keys) == 1 and keys[0] is not None:
            session.info.setdefault("tsunagu_added", {})[(cls, keys[0])] = instance
