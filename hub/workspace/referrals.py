"""Referral (つなぎ) service: import hub referral events, create, move on, list; each change audited and published.

The functions work inside the caller's transaction (they flush, never commit), so a web route,
the CLI and ``tsunagu serve``'s periodic sync share them. Every status change writes a
:class:`ReferralChange`, an audit entry with the user (or the hub for event-driven moves) and a
``jp.tsunagu.referral.status.v1`` CloudEvent into the hub outbox, all in that one transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent.store import ConsentRepository
from hub.identity.tables import Household, Person
from hub.logging import get_logger
from hub.pipeline.tables import CaseEvent
from hub.workspace.audit import audit_access
from hub.workspace.auth import Principal
from hub.workspace.models import Referral, ReferralChange
from hub.workspace.publish import build_event, emit
from hub.workspace.referral_rules import (
    CASE_EVENT_TYPES,
    FIELD_TARGETS,
    OPEN,
    REFERRAL_REQUESTED,
    WORKSPACE_TARGETS,
    CaseSignal,
    advance,
    allowed_next,
    check_transition,
    is_forward,
    is_overdue,
    referral_from_event,
)
from schemas.codes import Field
from schemas.events import ReferralStatusV1

log = get_logger("tsunagu.workspace.referrals")

#: the principal event-driven changes are audited with
HUB = Principal(username="tsunagu-hub", role="system", agency=None)


class ReferralError(ValueError):
    """A referral request the service refuses; the message is Japanese and names no person."""


@dataclass(frozen=True)
class ReferralView:
    """A referral as the list shows it: no names, no record keys, no person ids."""

    id: str
    household_id: str | None
    origin: str
    from_agency: str | None
    target: str
    status: str
    reason: str | None
    requested_at: datetime
    updated_at: datetime
    overdue: bool
    next_statuses: Sequence[str]
    days_waiting: int = 0  # whole days since the request (for the overdue list)


def view_of(r: Referral, now: datetime, overdue_days: int) -> ReferralView:
    return ReferralView(r.id, r.household_id, r.origin, r.from_agency, r.target, r.status, r.reason, r.requested_at,
                        r.updated_at, is_overdue(r.status, r.requested_at, now, overdue_days),
                        list(allowed_next(r.status)), max(0, (now - r.requested_at).days))


def _publish_change(s: Session, prefix: str, r: Referral, previous: str | None, by: str, at: datetime) -> None:
    payload = ReferralStatusV1.model_validate({
        "referral": r.id, "household": r.household_id, "origin": r.origin, "from_agency": r.from_agency,
        "target": r.target, "status": r.status, "previous": previous, "reason": r.reason, "by": by,
    })
    emit(s, prefix, build_event("jp.tsunagu.referral.status.v1", payload, subject=r.id, at=at,
                                household=r.household_id))


def _record(s: Session, prefix: str, r: Referral, previous: str | None, to: str, reason: str | None,
            principal: Principal, by: str, at: datetime) -> None:
    r.status = to
    r.reason = reason if to in ("rejected", "cancelled") else r.reason
    r.updated_at = at
    r.updated_by = by
    s.add(ReferralChange(referral_id=r.id, from_status=previous, to_status=to, reason=reason, by=by, at=at))
    audit_access(s, principal, f"referral.{to}", household=r.household_id, object_id=f"referral:{r.id}", at=at)
    _publish_change(s, prefix, r, previous, "event" if principal is HUB else principal.username, at)


# --------------------------------------------------------------------------- who may do what
def team_may_see(s: Session, r: Referral, now: datetime) -> bool:
    """The sharing rules for the multi-agency team: a referral between two agencies is theirs unless it flowed.

    The team sees its own referrals (origin coordinator), a referral event that flowed to the team
    (consent or emergency: ``team_published``), and — as fields, status and dates only, which is all
    a list shows — one from an agency that sits on the household's 支援会議 designated at this time.
    """
    if r.origin == "coordinator":
        return True
    if r.source_event_id:
        source, _, event_id = r.source_event_id.rpartition("#")
        row = s.get(CaseEvent, (event_id, source))
        if row is not None and row.team_published:
            return True
    if r.household_id is None or r.from_agency is None:
        return False
    designations = ConsentRepository(s).designations_for(r.household_id)
    return any(d.active_at(now) and r.from_agency in {f.value for f in d.member_agencies} for d in designations)


def may_see(principal: Principal, r: Referral, s: Session, now: datetime) -> bool:
    """An agency's user sees the referrals to or from their agency; the team (and admin) what
    :func:`team_may_see` allows."""
    if principal.agency is not None and not principal.is_admin:
        return principal.agency in (r.target, r.from_agency)
    return team_may_see(s, r, now)


def may_change(principal: Principal, r: Referral, to: str) -> bool:
    """The team moves any referral; the receiving agency answers its own; the sending agency may cancel its own."""
    if principal.agency is None or principal.is_admin:
        return True
    if principal.agency == r.target:
        return to != "cancelled"
    return principal.agency == r.from_agency and to == "cancelled"


# --------------------------------------------------------------------------- coordinator actions
def household_exists(s: Session, household: str) -> bool:
    return s.get(Household, household) is not None


def create_referral(s: Session, principal: Principal, *, household: str, target: str, now: datetime, prefix: str,
                    person_id: str | None = None, from_agency: str | None = None) -> Referral:
    """A referral the coordinator makes: to an agency, the team, アウトリーチ等 or 参加支援."""
    if target not in WORKSPACE_TARGETS:
        raise ReferralError("つなぎ先を選んでください")
    if from_agency is not None and from_agency not in WORKSPACE_TARGETS:
        raise ReferralError("つなぎ元が不明です")
    if from_agency is not None and from_agency == target:
        raise ReferralError("つなぎ元と同じ機関にはつなげません")
    if not household or not household_exists(s, household):
        raise ReferralError("世帯が見つかりません")
    if person_id is not None:
        person = s.get(Person, person_id)
        if person is None or person.household_id != household:
            raise ReferralError("その世帯の方ではありません")
    r = Referral(id=uuid.uuid4().hex, origin="coordinator", source_event_id=None, household_id=household,
                 person_id=person_id, record=None, from_agency=from_agency or "multi_agency", target=target,
                 status="requested", reason=None, requested_at=now, updated_at=now, updated_by=principal.username)
    s.add(r)
    s.flush()
    s.add(ReferralChange(referral_id=r.id, from_status=None, to_status="requested", reason=None,
                         by=principal.username, at=now))
    audit_access(s, principal, "referral.create", household=household, object_id=f"referral:{r.id}", at=now)
    _publish_change(s, prefix, r, None, principal.username, now)
    return r


def change_status(s: Session, principal: Principal, referral_id: str, to: str, *, now: datetime, prefix: str,
                  reason: str | None = None) -> Referral:
    """A coordinator's entry moves the referral (the transition table decides; a reason code where needed)."""
    r = s.scalar(select(Referral).where(Referral.id == referral_id).with_for_update())
    if r is None or not may_see(principal, r, s, now):
        raise ReferralError("つなぎが見つかりません")
    if not may_change(principal, r, to):
        raise ReferralError("このつなぎの状態を変更する権限がありません")
    try:
        check_transition(r.status, to, reason)
    except ValueError as exc:
        raise ReferralError("この状態からは変更できません" if "needs a reason" not in str(exc) and
                            "reason code" not in str(exc) else "理由を選んでください") from exc
    _record(s, prefix, r, r.status, to, reason, principal, principal.username, now)
    return r


def follow_team_work(s: Session, principal: Principal, household: str, to: str, *, now: datetime,
                     prefix: str) -> int:
    """Referrals to 多機関協働 follow the team's own work: a plan made → in-progress, a plan ended → completed.

    Forward moves only; returns how many referrals moved.
    """
    moved = 0
    rows = s.scalars(select(Referral).where(Referral.household_id == household, Referral.target == "multi_agency",
                                            Referral.status.in_(sorted(OPEN))).with_for_update()).all()
    for r in rows:
        if is_forward(r.status, to):
            _record(s, prefix, r, r.status, to, None, principal, principal.username, now)
            moved += 1
    return moved


# --------------------------------------------------------------------------- from the hub's events
@dataclass(frozen=True)
class SyncResult:
    imported: int
    moved: int
    skipped: int


def _import_new(s: Session, prefix: str, now: datetime) -> tuple[int, int]:
    known = set(s.scalars(select(Referral.source_event_id).where(Referral.source_event_id.is_not(None))))
    imported = skipped = 0
    rows = s.execute(select(CaseEvent.source, CaseEvent.event_id).where(CaseEvent.type == REFERRAL_REQUESTED)).all()
    for source, event_id in rows:
        if f"{source}#{event_id}" in known:
            continue
        row = s.get(CaseEvent, (event_id, source))
        if row is None:
            continue
        try:
            new = referral_from_event(json.loads(row.payload))
        except ValueError:
            # already validated by the hub; a row that no longer parses is reported, never dropped silently
            log.warning("referral event not importable", event_id=event_id)
            skipped += 1
            continue
        r = Referral(id=new.id, origin="event", source_event_id=new.source_event_id, household_id=row.household_id,
                     person_id=row.person_id, record=new.record, from_agency=new.from_agency, target=new.target,
                     status="requested", reason=None, requested_at=new.requested_at, updated_at=now,
                     updated_by="event:" + event_id)
        s.add(r)
        s.flush()
        s.add(ReferralChange(referral_id=r.id, from_status=None, to_status="requested", reason=None,
                             by=f"event:{event_id}", at=now))
        audit_access(s, HUB, "referral.import", household=r.household_id, object_id=f"referral:{r.id}", at=now)
        _publish_change(s, prefix, r, None, "event", now)
        imported += 1
    return imported, skipped


def _signals(s: Session, person_id: str, field: str, since: datetime) -> list[CaseSignal]:
    rows = s.scalars(
        select(CaseEvent)
        .where(CaseEvent.person_id == person_id, CaseEvent.field == field, CaseEvent.time >= since)
        .where(CaseEvent.type.in_(sorted(CASE_EVENT_TYPES)))
    ).all()
    out = []
    for row in rows:
        try:
            status = str(json.loads(row.payload)["data"]["status"])
        except (ValueError, KeyError, TypeError):
            continue
        out.append(CaseSignal(row.event_id, row.type, row.field, row.person_id, status, row.time))
    return out


def sync_referrals(s: Session, *, now: datetime, prefix: str) -> SyncResult:
    """Import referral events not yet imported, then let receiving agencies' case events move open referrals.

    Idempotent: run twice over the same hub state, the second run changes nothing.
    """
    imported, skipped = _import_new(s, prefix, now)
    moved = 0
    open_refs = s.scalars(
        select(Referral).where(Referral.status.in_(sorted(OPEN)), Referral.target.in_(sorted(FIELD_TARGETS)))
        .with_for_update()
    ).all()
    for r in open_refs:
        if r.origin == "event" and r.source_event_id:
            source, _, event_id = r.source_event_id.rpartition("#")
            row = s.get(CaseEvent, (event_id, source))
            if row is not None:  # identity decisions may have re-attributed the person since
                r.person_id, r.household_id = row.person_id, row.household_id
        if r.person_id is None:
            continue
        for to, sig in advance(r.status, r.target, r.person_id, r.requested_at,
                               _signals(s, r.person_id, r.target, r.requested_at)):
            _record(s, prefix, r, r.status, to, None, HUB, f"event:{sig.event_id}", now)
            moved += 1
    return SyncResult(imported, moved, skipped)


# --------------------------------------------------------------------------- lists
def list_referrals(s: Session, *, now: datetime, overdue_days: int, include_closed: bool = False,
                   household: str | None = None, status: str | None = None,
                   principal: Principal | None = None) -> list[ReferralView]:
    """Open referrals (or all), oldest request first; ``overdue`` marks those nobody accepted in time.

    With ``principal``, only those :func:`may_see` allows.
    """
    q = select(Referral).order_by(Referral.requested_at, Referral.id)
    if principal is not None and principal.agency is not None and not principal.is_admin:
        q = q.where((Referral.target == principal.agency) | (Referral.from_agency == principal.agency))
    if household is not None:
        q = q.where(Referral.household_id == household)
    if status is not None:
        q = q.where(Referral.status == status)
    elif not include_closed:
        q = q.where(Referral.status.in_(sorted(OPEN)))
    rows = [r for r in s.scalars(q) if principal is None or may_see(principal, r, s, now)]
    return [view_of(r, now, overdue_days) for r in rows]


def overdue_referrals(s: Session, *, now: datetime, overdue_days: int) -> list[ReferralView]:
    return [v for v in list_referrals(s, now=now, overdue_days=overdue_days, status="requested") if v.overdue]


def history(s: Session, referral_id: str) -> Sequence[ReferralChange]:
    return s.scalars(select(ReferralChange).where(ReferralChange.referral_id == referral_id)
                     .order_by(ReferralChange.at, ReferralChange.id)).all()


def get_referral(s: Session, referral_id: str) -> Referral | None:
    return s.get(Referral, referral_id)


def agency_fields() -> list[str]:
    return [f.value for f in Field]
