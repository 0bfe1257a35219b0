"""The workspace's tables (users, sessions, alert work, meetings, plans, referrals, notifications), hub metadata."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hub.db import Base, UTCDateTime

#: the roles a user may have
ROLES = ("coordinator", "consent_officer", "ops", "admin")
#: alert work states (an alert without an AlertWork row is ``new``)
ALERT_STATES = ("new", "acknowledged", "assigned", "closed")
MEETING_KINDS = ("support_meeting", "team_meeting")
MEETING_STATES = ("agenda", "held", "cancelled")
MEETING_DECISIONS = ("designate", "no_action", "seek_consent", "take_into_team", "end_designation")
PLAN_STATES = ("active", "evaluated", "closed", "handed_over")
PLAN_ENTRY_KINDS = ("monitoring", "evaluation", "closure", "handover")
PROGRAMMES = ("outreach", "participation")
REFERRAL_STATUSES = ("requested", "accepted", "rejected", "in-progress", "completed", "cancelled")


class User(Base):
    """A person who logs in to the workspace; ``agency`` is a field code, or null for the municipal team."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    agency: Mapped[str | None] = mapped_column(String(32))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebSession(Base):
    """A server-side login session; the cookie carries a random token, the table only its SHA-256."""

    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AlertWork(Base):
    """What the team did with one hub alert (``alerts.alert_id``)."""

    __tablename__ = "alert_work"

    alert_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default="new")
    assignee: Mapped[str | None] = mapped_column(String(64))
    closed_reason: Mapped[str | None] = mapped_column(String(64))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reopened: Mapped[bool] = mapped_column(Boolean, default=False)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    #: the hub alert's ``updated_at`` the coordinator last acted on
    last_seen_update: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String(64))


class Meeting(Base):
    """A 支援会議 (第106条の6, ``support_meeting``) or 重層的支援会議 (``team_meeting``) case of one household."""

    __tablename__ = "meetings"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    household_id: Mapped[str] = mapped_column(String(40), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="agenda")
    alert_id: Mapped[str | None] = mapped_column(String(64))
    planned_on: Mapped[date | None] = mapped_column(Date)
    held_on: Mapped[date | None] = mapped_column(Date)
    members_present: Mapped[list[str]] = mapped_column(JSON, default=list)
    decision: Mapped[str | None] = mapped_column(String(32))
    note_code: Mapped[str | None] = mapped_column(String(64))
    designation_id: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Plan(Base):
    """A プラン of the multi-agency team for one household."""

    __tablename__ = "plans"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    household_id: Mapped[str] = mapped_column(String(40), index=True)
    state: Mapped[str] = mapped_column(String(16), default="active")
    lead_agency: Mapped[str] = mapped_column(String(32))
    roles: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    goals: Mapped[list[str]] = mapped_column(JSON, default=list)
    programmes: Mapped[list[str]] = mapped_column(JSON, default=list)
    next_monitoring_on: Mapped[date] = mapped_column(Date)
    evaluation: Mapped[str | None] = mapped_column(Text)
    closed_reason: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    version: Mapped[int] = mapped_column(Integer, default=1)


class PlanEntry(Base):
    """A monitoring, evaluation, closure or hand-over entry of a plan."""

    __tablename__ = "plan_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    on: Mapped[date] = mapped_column(Date)
    text: Mapped[str] = mapped_column(Text)
    by: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class Referral(Base):
    """A referral (つなぎ) with an HL7 Gravity SDOH-style Task status."""

    __tablename__ = "referrals"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    origin: Mapped[str] = mapped_column(String(16))
    source_event_id: Mapped[str | None] = mapped_column(String(300), unique=True)
    household_id: Mapped[str | None] = mapped_column(String(40), index=True)
    person_id: Mapped[str | None] = mapped_column(String(40), index=True)
    record: Mapped[str | None] = mapped_column(String(200))
    from_agency: Mapped[str | None] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="requested")
    reason: Mapped[str | None] = mapped_column(String(200))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String(200))


class ReferralChange(Base):
    """One status change of a referral (who, when, why)."""

    __tablename__ = "referral_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    referral_id: Mapped[str] = mapped_column(ForeignKey("referrals.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(200))
    by: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class Notification(Base):
    """One notification, keyed by what it is about, so it is sent at least once and never twice."""

    __tablename__ = "notifications"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error_code: Mapped[str | None] = mapped_column(String(64))


