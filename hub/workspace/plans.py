"""プラン service: make a plan for a household taken into 多機関協働, monitor, evaluate, close or hand over.

Functions work inside the caller's transaction (flush, never commit). Each change bumps the plan's
``version`` (optimistic locking: a stale form is refused), writes its entry, an audit entry with
the user and a ``jp.tsunagu.plan.updated.v1`` CloudEvent into the hub outbox. Routing a plan to
アウトリーチ等 or 参加支援 opens a referral to that programme, so the loop is followed on /referrals.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.workspace.audit import audit_access
from hub.workspace.auth import Principal
from hub.workspace.models import Meeting, Plan, PlanEntry, Referral
from hub.workspace.plan_rules import (
    ENDED,
    ENTRY_KIND,
    PlanAction,
    PlanChange,
    PlanInput,
    PlanRuleError,
    check_entry,
    check_plan_input,
    monitoring_overdue,
    next_state,
)
from hub.workspace.publish import build_event, emit
from hub.workspace.referral_rules import OPEN
from hub.workspace.referrals import create_referral, follow_team_work, household_exists
from schemas.events import PlanUpdatedV1
from schemas.wareki import JST

OPEN_STATES = ("active", "evaluated")


class PlanError(PlanRuleError):
    """A plan request the service refuses (Japanese message, no personal data)."""


def today_jst(now: datetime) -> date:
    return now.astimezone(JST).date()


def taken_into_team(s: Session, household: str) -> bool:
    """A 重層的支援会議 decided to take the household into 多機関協働 (with consent)."""
    return s.scalar(
        select(Meeting.id).where(Meeting.household_id == household, Meeting.kind == "team_meeting",
                                 Meeting.state == "held", Meeting.decision == "take_into_team").limit(1)
    ) is not None


def open_plan(s: Session, household: str) -> Plan | None:
    return s.scalar(select(Plan).where(Plan.household_id == household, Plan.state.in_(OPEN_STATES)).limit(1))


def _publish(s: Session, prefix: str, plan: Plan, change: PlanChange, by: str, at: datetime) -> None:
    payload = PlanUpdatedV1.model_validate({
        "plan": plan.id, "household": plan.household_id, "change": change, "state": plan.state,
        "lead_agency": plan.lead_agency, "agencies": sorted(plan.roles), "programmes": list(plan.programmes),
        "next_monitoring_on": plan.next_monitoring_on if plan.state not in ENDED else None,
        "version": plan.version, "by": by,
    })
    emit(s, prefix, build_event("jp.tsunagu.plan.updated.v1", payload, subject=f"{plan.id}:{plan.version}", at=at,
                                household=plan.household_id))


def _route_programmes(s: Session, principal: Principal, plan: Plan, now: datetime, prefix: str) -> None:
    """One open referral per programme the plan routes to (none made twice)."""
    for programme in plan.programmes:
        existing = s.scalar(select(Referral.id).where(Referral.household_id == plan.household_id,
                                                      Referral.target == programme,
                                                      Referral.status.in_(sorted(OPEN))).limit(1))
        if existing is None:
            create_referral(s, principal, household=plan.household_id, target=programme, now=now, prefix=prefix,
                            from_agency=plan.lead_agency)


def create_plan(s: Session, principal: Principal, household: str, data: PlanInput, *, now: datetime,
                prefix: str) -> Plan:
    """A plan for a household the 重層的支援会議 took into 多機関協働; one open plan per household."""
    if not household or not household_exists(s, household):
        raise PlanError("世帯が見つかりません")
    if not taken_into_team(s, household):
        raise PlanError("重層的支援会議で多機関協働の対象とする決定（本人同意）を記録してからプランを作成してください")
    if open_plan(s, household) is not None:
        raise PlanError("この世帯には進行中のプランがあります")
    clean = check_plan_input(data, today_jst(now))
    assert clean.next_monitoring_on is not None
    plan = Plan(id=uuid.uuid4().hex, household_id=household, state="active", lead_agency=clean.lead_agency,
                roles=dict(clean.roles), goals=list(clean.goals), programmes=list(clean.programmes),
                next_monitoring_on=clean.next_monitoring_on, evaluation=None, closed_reason=None,
                created_by=principal.username, created_at=now, updated_at=now, version=1)
    s.add(plan)
    s.flush()
    audit_access(s, principal, "plan.create", household=household, object_id=f"plan:{plan.id}", at=now)
    _publish(s, prefix, plan, "created", principal.username, now)
    _route_programmes(s, principal, plan, now, prefix)
    follow_team_work(s, principal, household, "in-progress", now=now, prefix=prefix)
    return plan


def _load(s: Session, plan_id: str, version: int | None) -> Plan:
    plan = s.scalar(select(Plan).where(Plan.id == plan_id).with_for_update())
    if plan is None:
        raise PlanError("プランが見つかりません")
    if version is not None and plan.version != version:
        raise PlanError("他の人がこのプランを更新しました。画面を開き直してください")
    return plan


def update_plan(s: Session, principal: Principal, plan_id: str, data: PlanInput, *, version: int | None,
                now: datetime, prefix: str) -> Plan:
    """Change the lead agency, roles, goals, programmes or next monitoring date of an active plan."""
    plan = _load(s, plan_id, version)
    next_state(plan.state, "update")
    clean = check_plan_input(data, today_jst(now))
    assert clean.next_monitoring_on is not None
    plan.lead_agency, plan.roles, plan.goals = clean.lead_agency, dict(clean.roles), list(clean.goals)
    plan.programmes, plan.next_monitoring_on = list(clean.programmes), clean.next_monitoring_on
    plan.version += 1
    plan.updated_at = now
    audit_access(s, principal, "plan.update", household=plan.household_id, object_id=f"plan:{plan.id}", at=now)
    _publish(s, prefix, plan, "updated", principal.username, now)
    _route_programmes(s, principal, plan, now, prefix)
    return plan


def record(s: Session, principal: Principal, plan_id: str, action: PlanAction, *, on: date | None, text: str,
           version: int | None, now: datetime, prefix: str, next_monitoring_on: date | None = None,
           reason: str | None = None) -> Plan:
    """Monitoring, evaluation, resume (プラン見直し), 終結 with a reason code, or hand-over to the 主担当 agency."""
    if action == "update":
        raise PlanError("不明な操作です")
    plan = _load(s, plan_id, version)
    to, change = next_state(plan.state, action)
    check_entry(action, on, text, today_jst(now), next_monitoring_on=next_monitoring_on, reason=reason)
    assert on is not None
    kind = ENTRY_KIND[action]
    if kind is not None:
        s.add(PlanEntry(plan_id=plan.id, kind=kind, on=on, text=text.strip(), by=principal.username, at=now))
    if action in ("monitor", "resume") and next_monitoring_on is not None:
        plan.next_monitoring_on = next_monitoring_on
    if action == "evaluate":
        plan.evaluation = text.strip()
    if action == "close":
        plan.closed_reason = reason
    plan.state = to
    plan.version += 1
    plan.updated_at = now
    audit_access(s, principal, f"plan.{action}", household=plan.household_id, object_id=f"plan:{plan.id}", at=now)
    _publish(s, prefix, plan, change, principal.username, now)
    if to in ENDED:
        follow_team_work(s, principal, plan.household_id, "completed", now=now, prefix=prefix)
    return plan


# --------------------------------------------------------------------------- queries
def get_plan(s: Session, plan_id: str) -> Plan | None:
    return s.get(Plan, plan_id)


def entries(s: Session, plan_id: str) -> Sequence[PlanEntry]:
    return s.scalars(select(PlanEntry).where(PlanEntry.plan_id == plan_id).order_by(PlanEntry.on, PlanEntry.id)).all()


def plans_for_household(s: Session, household: str) -> Sequence[Plan]:
    return s.scalars(select(Plan).where(Plan.household_id == household).order_by(Plan.created_at.desc())).all()


def list_plans(s: Session, *, include_ended: bool = False) -> Sequence[Plan]:
    """Plans in progress (or all), the next monitoring date first."""
    q = select(Plan).order_by(Plan.next_monitoring_on, Plan.id)
    if not include_ended:
        q = q.where(Plan.state.in_(OPEN_STATES))
    return s.scalars(q).all()


def overdue_monitoring(s: Session, today: date) -> list[Plan]:
    """Active plans whose monitoring date has passed (the inbox lists them)."""
    rows = s.scalars(select(Plan).where(Plan.state == "active", Plan.next_monitoring_on < today)
                     .order_by(Plan.next_monitoring_on, Plan.id)).all()
    return [p for p in rows if monitoring_overdue(p.state, p.next_monitoring_on, today)]
