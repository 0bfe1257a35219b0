"""会議 cases: put a household on a 支援会議 (第106条の6) or 重層的支援会議 agenda and record the meeting's decision.

A 支援会議 decision ``designate`` creates the consent registry's designation for the household
(``consent.store.ConsentRepository.add_designation``) with the agencies present as its members, from
the meeting day; ``end_designation`` ends the household's open designations on the meeting day (a
designation also ends with the case: see :func:`hub.workspace.policy.designation_in_force`).
A 重層的支援会議 may take the household into 多機関協働 only when consent covers its records (the
policy's ``team`` route); the plan is then made on /plans. Every change is audited with the user.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent.model import JST, Designation, fields_tuple
from consent.store import ConsentRepository
from hub.pipeline.tables import AlertState
from hub.workspace.audit import audit_access
from hub.workspace.auth import Principal
from hub.workspace.households import household_exists
from hub.workspace.models import Meeting
from hub.workspace.policy import HouseholdView
from schemas.codes import Field

KIND_LABELS: dict[str, str] = {
    "support_meeting": "支援会議（社会福祉法第106条の6）",
    "team_meeting": "重層的支援会議",
}
DECISION_LABELS: dict[str, str] = {
    "designate": "支援会議の対象とし、出席機関で情報を共有する",
    "seek_consent": "本人同意を求める",
    "take_into_team": "多機関協働で支援する（プランを作成する）",
    "end_designation": "支援会議の対象から外す",
    "no_action": "対応しない",
}
#: which decisions each kind of meeting can take
DECISIONS: dict[str, tuple[str, ...]] = {
    "support_meeting": ("designate", "seek_consent", "end_designation", "no_action"),
    "team_meeting": ("take_into_team", "seek_consent", "no_action"),
}


class MeetingError(ValueError):
    """A request the meeting's state or the rules do not allow (the message is Japanese, shown to the user)."""


def _today(now: datetime) -> date:
    return now.astimezone(JST).date()


def create_agenda(s: Session, principal: Principal, *, kind: str, now: datetime, household: str | None = None,
                  alert_id: str | None = None, planned_on: date | None = None) -> Meeting:
    """Put a household (or an alert's household) on a meeting agenda; an open agenda of that kind is reused."""
    if kind not in KIND_LABELS:
        raise MeetingError("会議の種類を選んでください。")
    if alert_id:
        alert = s.get(AlertState, alert_id)
        if alert is None:
            raise LookupError("alert not found")
        if household is not None and household != alert.household_id:
            raise MeetingError("アラートと世帯が一致しません。")
        household = alert.household_id
    if not household or not household_exists(s, household):
        raise LookupError("household not found")
    existing = s.scalars(select(Meeting).where(Meeting.household_id == household, Meeting.kind == kind,
                                               Meeting.state == "agenda")).first()
    if existing is not None:
        if planned_on is not None and planned_on != existing.planned_on:
            existing.planned_on = planned_on
            existing.updated_at = now
            s.flush()
            audit_access(s, principal, "meeting.plan", household=household, object_id=existing.id, at=now)
        return existing
    meeting = Meeting(id=f"m-{uuid.uuid4().hex[:16]}", household_id=household, kind=kind, state="agenda",
                      alert_id=alert_id, planned_on=planned_on, members_present=[], created_by=principal.username,
                      created_at=now, updated_at=now)
    s.add(meeting)
    s.flush()
    audit_access(s, principal, "meeting.agenda", household=household, object_id=meeting.id, at=now)
    return meeting


def record_decision(s: Session, principal: Principal, meeting: Meeting, *, held_on: date | None,
                    members_present: Sequence[str], decision: str, view: HouseholdView,
                    now: datetime) -> Meeting:
    """Record that the meeting was held, who sat on it and what it decided; apply the decision."""
    if meeting.state != "agenda":
        raise MeetingError("この会議の結果はすでに記録されています。")
    if decision not in DECISIONS.get(meeting.kind, ()):
        raise MeetingError("この会議では選べない決定です。")
    if held_on is None:
        raise MeetingError("開催日を入力してください。")
    if held_on > _today(now):
        raise MeetingError("開催日に未来の日付は入力できません。")
    try:
        present = fields_tuple(members_present)
    except ValueError:
        raise MeetingError("出席機関の指定が正しくありません。") from None
    repo = ConsentRepository(s)
    if decision == "designate":
        if not present:
            raise MeetingError("出席した機関を選んでください（情報を共有できるのは出席機関だけです）。")
        designation = Designation(designation_id=f"dsg-{meeting.id}", household=meeting.household_id,
                                  member_agencies=present, start=held_on, end=None,
                                  designated_by=principal.username)
        repo.add_designation(designation)
        meeting.designation_id = designation.designation_id
    elif decision == "end_designation":
        open_ones = [d for d in repo.designations_for(meeting.household_id) if d.end is None or d.end > held_on]
        if not open_ones:
            raise MeetingError("終了する支援会議の指定がありません。")
        for d in open_ones:
            repo.add_designation(replace(d, end=max(held_on, d.start)))
    elif decision == "take_into_team" and view.route != "team":
        raise MeetingError("本人同意がないため、多機関協働に移行できません。先に同意を得てください。")
    meeting.state = "held"
    meeting.held_on = held_on
    meeting.members_present = [f.value for f in present]
    meeting.decision = decision
    meeting.updated_at = now
    s.flush()
    audit_access(s, principal, f"meeting.{decision}", household=meeting.household_id, object_id=meeting.id, at=now)
    return meeting


def cancel(s: Session, principal: Principal, meeting: Meeting, now: datetime) -> Meeting:
    """Take a meeting off the agenda (only before its decision is recorded)."""
    if meeting.state != "agenda":
        raise MeetingError("開催済みまたは取消済みの会議は取り消せません。")
    meeting.state = "cancelled"
    meeting.updated_at = now
    s.flush()
    audit_access(s, principal, "meeting.cancel", household=meeting.household_id, object_id=meeting.id, at=now)
    return meeting


def meetings_of(s: Session, household: str | None = None, *, agency: str | None = None) -> list[Meeting]:
    """Meetings newest first; one household's, or every one (an agency's user: those its agency sat on)."""
    stmt = select(Meeting).order_by(Meeting.created_at.desc(), Meeting.id)
    if household is not None:
        stmt = stmt.where(Meeting.household_id == household)
    rows = list(s.scalars(stmt))
    if agency is not None:
        rows = [m for m in rows if agency in (m.members_present or [])]
    return rows


def field_choices() -> list[str]:
    return [f.value for f in Field]


#: who the audit trail names when a designation ends with the case (no user acted)
SYSTEM = Principal("system:case-closed", "admin", None)


def end_with_cases(s: Session, now: datetime) -> list[str]:
    """Write the end of every open designation whose member fields have no open case left (it "ends with the
    case"), so the hub stops routing that household's events to the 支援会議. Returns the designation ids ended.

    The end is the day before the last case closed (a case is no longer active from its closing day), never
    before the designation's start. The policy already hides an ended-with-the-case designation on screen;
    this makes the consent registry say so too. Meant for the periodic round; the caller commits.
    """
    from consent.store import DesignationRow
    from hub.pipeline.tables import CaseState

    today = _today(now)
    ended: list[str] = []
    repo = ConsentRepository(s)
    for row in s.scalars(select(DesignationRow).where(DesignationRow.end.is_(None), DesignationRow.start <= today)
                         .order_by(DesignationRow.designation_id)):
        cases = s.execute(select(CaseState.field, CaseState.closed_on).where(
            CaseState.household_id == row.household, CaseState.field.in_(list(row.member_agencies or [])))).all()
        if not cases or any(closed is None or closed > today for _, closed in cases):
            continue
        last = max(closed for _, closed in cases if closed is not None)
        designation = row.to_designation()
        end = max(designation.start, last - timedelta(days=1))
        repo.add_designation(replace(designation, end=end))
        audit_access(s, SYSTEM, "designation.end_with_case", household=row.household,
                     object_id=row.designation_id, at=now)
        ended.append(row.designation_id)
    return ended
