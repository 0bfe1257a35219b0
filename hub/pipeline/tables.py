"""The hub's own tables: delivery bookkeeping (dedupe, outbox), cases and their events, alerts.

Identity tables live in hub/identity.py and consent tables in consent/store.py; Alembic
migrations (hub/migrations) cover all of them.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime


class ProcessedEvent(Base):
    """Idempotency: one row per (stage, CloudEvents source, id) the hub has durably handled."""

    __tablename__ = "processed_events"

    stage: Mapped[str] = mapped_column(String(32), primary_key=True)
    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(32))  # forwarded | dead | stale | applied
    feed: Mapped[str | None] = mapped_column(String(32))
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class HubOutbox(Base):
    """Messages the hub decided to publish, written in the same transaction as the state change.

    Rows are deleted once the broker acknowledged them; leftovers (a crash between commit
    and publish) are relayed on the next batch or at start-up, with their original ids.
    """

    __tablename__ = "hub_outbox"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(200))
    key: Mapped[str | None] = mapped_column(String(200))
    value: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CaseState(Base):
    """The newest known state of one case at one agency (older revisions never overwrite it)."""

    __tablename__ = "cases"

    case: Mapped[str] = mapped_column(String(200), primary_key=True)
    record: Mapped[str] = mapped_column(String(200), index=True)  # subject's record key
    person_id: Mapped[str | None] = mapped_column(String(40), index=True)
    household_id: Mapped[str | None] = mapped_column(String(40), index=True)
    feed: Mapped[str] = mapped_column(String(32))
    field: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    opened_on: Mapped[date] = mapped_column(Date)
    closed_on: Mapped[date | None] = mapped_column(Date)
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: houkatsu 同居家族: member record key → {"relation": 続柄 code, "notes": [備考 codes]}
    members: Mapped[dict[str, dict[str, object]]] = mapped_column(JSON, default=dict)
    revision: Mapped[datetime] = mapped_column(UTCDateTime())


class CaseEvent(Base):
    """Every accepted change event, kept so a consent that arrives later can release it.

    ``payload`` holds the CloudEvent as received (personal data: this table is the
    hub's protected store, never shown in the operations view).
    """

    __tablename__ = "case_events"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    record: Mapped[str] = mapped_column(String(200))
    person_id: Mapped[str | None] = mapped_column(String(40))
    household_id: Mapped[str | None] = mapped_column(String(40))
    field: Mapped[str | None] = mapped_column(String(32))
    type: Mapped[str] = mapped_column(String(100))
    time: Mapped[datetime] = mapped_column(UTCDateTime())
    team_published: Mapped[bool] = mapped_column(Boolean, default=False)
    payload: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (
        Index("ix_case_events_person_field", "person_id", "field"),
        Index("ix_case_events_household_shared", "household_id", "team_published"),
    )


class AlertState(Base):
    """One alert per household and kind; updated when it gets worse, closed by acknowledgement."""

    __tablename__ = "alerts"

    alert_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    household_id: Mapped[str] = mapped_column(String(40), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    fields: Mapped[list[str]] = mapped_column(JSON)
    records: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="open")
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(String(100))
    #: the hub ended the alert: a person it depended on left the household (死亡, 転出, 消除)
    closed_on: Mapped[date | None] = mapped_column(Date)
    close_reason: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (Index("ix_alerts_household_kind", "household_id", "kind", unique=True),)


class HubDeadLetter(Base):
    """Dead letters the hub itself produced (also published to the dead-letter topic): one row per dead letter
    (``dead_letter``, its CloudEvents id); the same one again (a still-bad replay) counts in ``occurrences``."""

    __tablename__ = "hub_dead_letters"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stage: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(200))
    event_id: Mapped[str | None] = mapped_column(String(64))
    record: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: the dead letter's CloudEvents id (empty on rows written before it was kept)
    dead_letter: Mapped[str | None] = mapped_column(String(64), index=True)
    occurrences: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
