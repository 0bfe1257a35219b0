"""A transaction's write buffer: rows a batch appends are inserted in bulk, per table in order, before any read.

Stage 2 appends plain rows (dedupe markers, kept events, outbox messages) instead of ORM objects; they are
written with one executemany per table before the session's next statement (so every read in the batch
sees them, as with autoflush), before a flush and at the end of the batch. Outbox rows come back with their
``seq`` (``RETURNING``, in the order appended), collected in ``session.info["tsunagu_outbox"]``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Table, event, insert
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from hub.pipeline.tables import HubOutbox

_PENDING = "tsunagu_pending"
#: the key under which a batch collects what it wrote to the outbox (rows, or ORM objects before their flush)
OUTBOX = "tsunagu_outbox"
_OUTBOX_TABLE: Table = HubOutbox.__table__  # type: ignore[assignment]


class Written(NamedTuple):
    """An outbox row as inserted (``seq`` from the database)."""

    seq: int
    topic: str
    key: str | None
    value: bytes


def add_row(s: Session, table: Any, row: dict[str, Any]) -> None:
    """Queue one row of ``table`` (a mapped class or a Table) for the next bulk write."""
    t: Table = getattr(table, "__table__", table)
    pending: dict[Table, list[dict[str, Any]]] = s.info.setdefault(_PENDING, {})
    pending.setdefault(t, []).append(row)


def write_pending(s: Session) -> None:
    """Insert every queued row now: one executemany per table, each table's rows in the order queued."""
    pending: dict[Table, list[dict[str, Any]]] | None = s.info.pop(_PENDING, None)
    if not pending:
        return
    for table, rows in pending.items():
        if table is _OUTBOX_TABLE:
            stmt = insert(table).returning(table.c.seq, sort_by_parameter_order=True)
            seqs: list[int] = list(s.execute(stmt, rows).scalars())
            written = s.info.get(OUTBOX)
            if written is not None:
                written.extend(Written(q, r["topic"], r["key"], r["value"]) for q, r in zip(seqs, rows, strict=True))
        else:
            s.execute(insert(table), rows)


def _before_statement(state: ORMExecuteState) -> None:
    write_pending(state.session)


def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    write_pending(session)


def install(sessions: sessionmaker[Session]) -> None:
    """Have sessions of ``sessions`` write their queued rows before each statement and each flush."""
    if not event.contains(sessions, "do_orm_execute", _before_statement):
        event.listen(sessions, "do_orm_execute", _before_statement)
        event.listen(sessions, "before_flush", _before_flush)
