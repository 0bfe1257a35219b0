"""The dead-letter store: every dead letter of every stage (connector, webhook, hub), as read from its topic.

The hub consumes the dead-letter topic (group ``<hub_group>-deadletter``) and keeps one row per
dead letter (its CloudEvents id): reason code, origin, the sealed original and how often it came.
``/ops``, ``/metrics`` (``tsunagu_dead_letters_total``) and ``tsunagu deadletter`` all read this table,
so they agree by construction. A dead letter seen again (a replay of a still-bad record) keeps its
row: ``occurrences`` and ``last_at`` move, the counts do not.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from hub.db import Base, UTCDateTime
from hub.logging import get_logger
from schemas.deadletter import DEADLETTER_TYPE, REASON_CODES, STAGES, DeadLetter, reason_code
from schemas.envelope import stable_event_id

log = get_logger("tsunagu.deadletter")

OPEN, REPLAYED = "open", "replayed"


class DeadLetterRow(Base):
    """One dead letter from any stage; ``record`` and ``original`` are never shown on /ops."""

    __tablename__ = "dead_letters"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    stage: Mapped[str] = mapped_column(String(16), index=True)
    feed: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(String(32), index=True)
    detail: Mapped[str] = mapped_column(Text)
    where: Mapped[str] = mapped_column(Text)
    scope: Mapped[str | None] = mapped_column(Text)
    position: Mapped[str | None] = mapped_column(String(200))
    delivery: Mapped[str | None] = mapped_column(String(200))
    topic: Mapped[str | None] = mapped_column(String(200))
    partition: Mapped[int | None] = mapped_column(Integer)
    offset: Mapped[int | None] = mapped_column(Integer)
    event_id: Mapped[str | None] = mapped_column(String(64))
    record: Mapped[str | None] = mapped_column(String(200))
    original: Mapped[str | None] = mapped_column(Text)  # Fernet token
    #: hub: the original message's Kafka key, a Fernet token like ``original``
    original_key: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default=OPEN)
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DeadLetterAccess(Base):
    """Audit of every reading of a dead letter's original bytes (who, which, when)."""

    __tablename__ = "dead_letter_access"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dead_letter: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


def audit_access(sessions: sessionmaker[Session], dead_letter: str, actor: str, action: str) -> None:
    with sessions.begin() as s:
        s.add(DeadLetterAccess(dead_letter=dead_letter, actor=actor, action=action, at=datetime.now(UTC)))
    log.warning("dead letter original read", dead_letter=dead_letter, actor=actor, action=action)


def mark_replayed(sessions: sessionmaker[Session], ids: Iterable[str]) -> int:
    """Dead letters whose record now went through: state ``replayed`` (kept, for the record)."""
    n = 0
    with sessions.begin() as s:
        for i in ids:
            row = s.get(DeadLetterRow, i)
            if row is not None and row.state != REPLAYED:
                row.state = REPLAYED
                n += 1
    return n


@dataclass(frozen=True)
class Parsed:
    """A dead-letter message in the store's terms."""

    id: str
    fields: dict[str, Any]


def parse_message(value: bytes, *, topic: str | None = None, partition: int | None = None,
                  offset: int | None = None) -> Parsed:
    """A message of the dead-letter topic: a ``jp.tsunagu.deadletter.v1`` CloudEvent, or an older plain
    :class:`DeadLetter` (hub stages before they publish CloudEvents); anything else is kept as unreadable."""
    try:
        doc = json.loads(value)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and doc.get("type") == DEADLETTER_TYPE and isinstance(doc.get("data"), dict):
        d = doc["data"]
        origin = d.get("origin") or {}
        stage = str(d.get("stage") or "connector")
        return Parsed(str(doc.get("id")), {
            "stage": stage if stage in STAGES else "hub", "feed": str(d.get("feed") or "hub"),
            "reason": str(d.get("reason")) if d.get("reason") in REASON_CODES else "other",
            "detail": str(d.get("detail") or ""), "where": str(origin.get("where") or ""),
            "scope": origin.get("scope"), "position": origin.get("position"), "delivery": origin.get("delivery"),
            "topic": origin.get("topic"), "partition": origin.get("partition"), "offset": origin.get("offset"),
            "event_id": d.get("event"), "record": d.get("record"), "original": d.get("original"),
            "original_key": d.get("original_key"),
        })
    try:
        letter = DeadLetter.model_validate(doc)
    except ValueError:
        return Parsed(stable_event_id("deadletter", "unreadable", topic, partition, offset), {
            "stage": "hub", "feed": "hub", "reason": "other", "detail": "unreadable dead-letter message",
            "where": f"{topic}/{partition}@{offset}", "scope": None, "position": None, "delivery": None,
            "topic": topic, "partition": partition, "offset": offset, "event_id": None, "record": None,
            "original": None, "original_key": None,
        })
    stage = "hub" if letter.stage.startswith("hub") else (letter.stage if letter.stage in STAGES else "connector")
    return Parsed(stable_event_id("deadletter", stage, letter.source, letter.where, letter.event or ""), {
        "stage": stage, "feed": letter.source, "reason": letter.code or reason_code(letter.reason, stage),
        "detail": letter.reason, "where": letter.where, "scope": None, "position": None, "delivery": None,
        "topic": None, "partition": None, "offset": None, "event_id": letter.event, "record": letter.record,
        "original": None, "original_key": None,
    })


def record_messages(sessions: sessionmaker[Session], messages: Iterable[tuple[bytes, str | None, int | None,
                                                                              int | None]]) -> int:
    """Store dead-letter messages (value, topic, partition, offset) in one transaction; returns the new ones."""
    now = datetime.now(UTC)
    new = 0
    with sessions.begin() as s:
        for value, topic, partition, offset in messages:
            p = parse_message(value, topic=topic, partition=partition, offset=offset)
            row = s.get(DeadLetterRow, p.id)
            if row is None:
                s.add(DeadLetterRow(id=p.id, state=OPEN, occurrences=1, first_at=now, last_at=now, **p.fields))
                s.flush()
                new += 1
            else:
                row.occurrences += 1
                row.last_at = now
                if p.fields.get("original") and not row.original:
                    row.original, row.original_key = p.fields["original"], p.fields["original_key"]
                row.state = OPEN  # dead-lettered again after a replay: still bad
    return new


def counts(s: Session) -> list[tuple[str, str, str, int]]:
    """(stage, feed, reason, n) of every dead letter stored: what /metrics and /ops both show."""
    rows = s.execute(select(DeadLetterRow.stage, DeadLetterRow.feed, DeadLetterRow.reason, func.count())
                     .group_by(DeadLetterRow.stage, DeadLetterRow.feed, DeadLetterRow.reason)).all()
    return sorted((str(a), str(b), str(c), int(n)) for a, b, c, n in rows)


def listing(s: Session, *, feed: str | None = None, reason: str | None = None, stage: str | None = None,
            limit: int = 1000) -> Sequence[DeadLetterRow]:
    q = select(DeadLetterRow)
    if feed:
        q = q.where(DeadLetterRow.feed == feed)
    if reason:
        q = q.where(DeadLetterRow.reason == reason)
    if stage:
        q = q.where(DeadLetterRow.stage == stage)
    return s.scalars(q.order_by(DeadLetterRow.first_at, DeadLetterRow.id).limit(limit)).all()


def public_view(row: DeadLetterRow) -> dict[str, Any]:
    """What an operator may see of a dead letter: codes, origin positions, times — no record key, no bytes."""
    return {
        "id": row.id, "stage": row.stage, "feed": row.feed, "reason": row.reason,
        "reason_label": REASON_CODES.get(row.reason, row.reason), "detail": row.detail, "where": row.where,
        "origin": {k: v for k, v in {"scope": row.scope, "position": row.position, "delivery": row.delivery,
                                     "topic": row.topic, "partition": row.partition, "offset": row.offset}.items()
                   if v is not None},
        "event": row.event_id, "state": row.state, "occurrences": row.occurrences,
        "original_kept": row.original is not None,
        "first_at": row.first_at.isoformat(), "last_at": row.last_at.isoformat(),
    }

