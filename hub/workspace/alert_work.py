"""The alert inbox's service: each hub alert's work state (new → acknowledged → assigned → closed), reopening, counts.

The hub keeps one alert per household and kind (``alerts``), updated when it gets worse. The team's
work on it lives in ``alert_work`` (no row = ``new``). An alert updated after it was closed shows as
*reopened* (state ``new`` again, flag ``reopened``), never as a second alert; the next action on it
counts the reopening. Transitions are a pure function (:func:`transition`); :func:`apply` writes one
in the caller's transaction together with its audit entry and its CloudEvent (hub outbox).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.pipeline.tables import AlertState
from hub.workspace.audit import audit_access
from hub.workspace.auth import Principal
from hub.workspace.models import ALERT_STATES, AlertWork, Plan
from hub.workspace.publish import alert_work_event

Action = Literal["acknowledge", "assign", "close"]
ACTIONS: tuple[Action, ...] = ("acknowledge", "assign", "close")

#: why an alert is closed (codes only: the audit trail and the CloudEvent never carry free text)
CLOSE_REASONS: dict[str, str] = {
    "support_meeting": "支援会議で検討する",
    "taken_into_team": "多機関協働で支援する",
    "agency_handles": "各分野の機関で対応する",
    "no_action": "対応不要と判断した",
    "moved_out": "転出した",
}

#: from which (effective) states an action may be taken
ALLOWED: dict[Action, frozenset[str]] = {
    "acknowledge": frozenset({"new"}),
    "assign": frozenset({"new", "acknowledged", "assigned"}),
    "close": frozenset({"new", "acknowledged", "assigned"}),
}
TARGET: dict[Action, str] = {"acknowledge": "acknowledged", "assign": "assigned", "close": "closed"}


class TransitionError(ValueError):
    """An action that the alert's state does not allow (the message is Japanese, shown to the user)."""


@dataclass(frozen=True)
class WorkState:
    """The work state as stored (``state`` of the row, or new without one) and as shown."""

    state: str  # new | acknowledged | assigned | closed (effective: a reopened alert is new)
    reopened: bool
    reopen_count: int
    assignee: str | None
    closed_reason: str | None
    closed_at: datetime | None
    worsened: bool  # the hub updated the alert since the team last acted on it


def effective(work: AlertWork | None, alert_updated_at: datetime) -> WorkState:
    """What the inbox shows: a closed alert the hub updated after it was acted on is reopened (new again)."""
    if work is None:
        return WorkState("new", False, 0, None, None, None, False)
    worsened = work.last_seen_update is not None and alert_updated_at > work.last_seen_update
    if work.state == "closed" and worsened:
        return WorkState("new", True, work.reopen_count + 1, None, None, None, True)
    return WorkState(work.state, work.reopened, work.reopen_count, work.assignee, work.closed_reason,
                     work.closed_at, worsened)


@dataclass(frozen=True)
class Change:
    state: str
    assignee: str | None
    closed_reason: str | None
    reopened: bool
    reopen_count: int


def transition(current: WorkState, action: str, *, assignee: str | None = None,
               reason: str | None = None) -> Change:
    """The next stored state for ``action`` from ``current``; TransitionError when not allowed."""
    if action not in ALLOWED:
        raise TransitionError("この操作はできません。")
    act = action
    if current.state not in ALLOWED[act]:
        raise TransitionError("このアラートの状態では、その操作はできません。")
    if act == "assign" and not (assignee and assignee.strip()):
        raise TransitionError("担当者を選んでください。")
    if act == "close" and reason not in CLOSE_REASONS:
        raise TransitionError("終了の理由を選んでください。")
    return Change(
        state=TARGET[act],
        assignee=assignee.strip() if act == "assign" and assignee else current.assignee,
        closed_reason=reason if act == "close" else None,
        reopened=current.reopened,
        reopen_count=current.reopen_count,
    )


def apply(s: Session, principal: Principal, alert_id: str, action: str, now: datetime, prefix: str, *,
          assignee: str | None = None, reason: str | None = None) -> AlertWork:
    """Take ``action`` on one alert: state row, audit entry and CloudEvent in the caller's transaction."""
    alert = s.get(AlertState, alert_id)
    if alert is None:
        raise LookupError("alert not found")
    work = s.get(AlertWork, alert_id)
    change = transition(effective(work, alert.updated_at), action, assignee=assignee, reason=reason)
    if work is None:
        work = AlertWork(alert_id=alert_id, reopen_count=0, reopened=False)
        s.add(work)
    work.state = change.state
    work.assignee = change.assignee
    work.closed_reason = change.closed_reason
    work.closed_at = now if change.state == "closed" else None
    work.reopened = change.reopened
    work.reopen_count = change.reopen_count
    work.last_seen_update = alert.updated_at
    work.updated_at = now
    work.updated_by = principal.username
    # the hub's own row: acknowledged once the team has acted on it (the ops view counts open alerts)
    alert.status = "acknowledged"
    alert.acknowledged_by = principal.username
    s.flush()
    audit_access(s, principal, f"alert.{action}", household=alert.household_id, object_id=alert_id, at=now)
    alert_work_event(s, prefix, alert_id=alert_id, household=alert.household_id, kind=alert.kind,
                     state=change.state, by=principal.username, at=now, assignee=work.assignee,
                     closed_reason=work.closed_reason, reopened=work.reopened)
    return work


# --------------------------------------------------------------------------- the inbox
@dataclass(frozen=True)
class InboxRow:
    alert_id: str
    household: str
    kind: str
    fields: tuple[str, ...]
    raised_at: datetime
    updated_at: datetime
    work: WorkState


def inbox(s: Session, *, kind: str | None = None, state: str | None = None,
          households: set[str] | None = None) -> tuple[list[InboxRow], dict[str, int]]:
    """Alerts newest first (by last change), filtered by kind and state, and the counts per state.

    Counts follow the kind filter but not the state filter, so each state's tab shows its number.
    ``households`` limits the inbox to those households (an agency user's 支援会議), None = all.
    """
    stmt = select(AlertState, AlertWork).outerjoin(AlertWork, AlertWork.alert_id == AlertState.alert_id)
    if kind:
        stmt = stmt.where(AlertState.kind == kind)
    if households is not None:
        stmt = stmt.where(AlertState.household_id.in_(sorted(households)))
    rows: list[InboxRow] = []
    counts: Counter[str] = Counter({st: 0 for st in ALERT_STATES})
    for alert, work in s.execute(stmt):
        w = effective(work, alert.updated_at)
        counts[w.state] += 1
        if w.reopened:
            counts["reopened"] += 1
        if state and not (w.state == state or (state == "reopened" and w.reopened)):
            continue
        rows.append(InboxRow(alert.alert_id, alert.household_id, alert.kind, tuple(alert.fields), alert.raised_at,
                             alert.updated_at, w))
    rows.sort(key=lambda r: (r.updated_at, r.raised_at, r.alert_id), reverse=True)
    return rows, dict(counts)


def overdue_plans(s: Session, today: date) -> Sequence[Plan]:
    """Plans still running whose next monitoring date has passed (oldest first)."""
    return s.scalars(select(Plan).where(Plan.state.in_(("active", "evaluated")), Plan.next_monitoring_on < today)
                     .order_by(Plan.next_monitoring_on, Plan.id)).all()
