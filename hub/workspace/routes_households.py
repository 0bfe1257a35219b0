"""The household page (/households/{household}) and its FHIR R5 export: exactly what the policy allows, audited."""

from __future__ import annotations

import json
from collections.abc import Sequence

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.workspace import labels
from hub.workspace.alert_work import effective
from hub.workspace.audit import audit_access
from hub.workspace.auth import COORDINATOR, Principal, require_roles, workspace_context
from hub.workspace.fhir_export import build_bundle
from hub.workspace.households import household_exists, load_household, viewer_of
from hub.workspace.meetings import DECISION_LABELS, KIND_LABELS, meetings_of
from hub.workspace.models import AlertWork, Plan, Referral
from hub.workspace.plans import taken_into_team
from hub.workspace.policy import HouseholdView, view_household
from hub.workspace.web import get_session, render

router = APIRouter()


def referral_shown(view: HouseholdView, r: Referral) -> bool:
    """Whether a referral may show on this view: its person is named here (consent), or it is the team's own
    (origin coordinator), or its agency sits on the viewer's 支援会議 (then target, status and dates only)."""
    if view.route not in ("team", "support_meeting"):
        return False
    named = {m.person for m in view.members if m.named and m.person}
    if r.person_id is not None and r.person_id in named:
        return True
    if r.origin == "coordinator":
        return True
    return r.from_agency is not None and r.from_agency in {f.value for f in view.meeting_fields}


def visible_referrals(s: Session, view: HouseholdView) -> list[Referral]:
    """The household's referrals this view may show (see :func:`referral_shown`), newest first."""
    if view.route not in ("team", "support_meeting"):
        return []
    rows = s.scalars(select(Referral).where(Referral.household_id == view.household)
                     .order_by(Referral.requested_at.desc(), Referral.id))
    return [r for r in rows if referral_shown(view, r)]


def visible_plan(s: Session, view: HouseholdView) -> Plan | None:
    """The household's newest plan, shown only on the team route (a plan rests on consent)."""
    if view.route != "team":
        return None
    return s.scalars(select(Plan).where(Plan.household_id == view.household)
                     .order_by(Plan.created_at.desc(), Plan.id)).first()


def _referral_rows(view: HouseholdView, referrals: Sequence[Referral]) -> list[dict[str, object]]:
    """What each referral may show: target, status and dates; the member only when named in this view."""
    names = {m.person: m for m in view.members if m.named and m.person}
    rows: list[dict[str, object]] = []
    for r in referrals:
        member = names.get(r.person_id or "")
        rows.append({"id": r.id, "target": r.target, "status": r.status, "requested_at": r.requested_at,
                     "updated_at": r.updated_at, "member": member.label if member else None,
                     "name": member.name if member else None})
    return rows


def _load_view(request: Request, s: Session, principal: Principal, household: str, action: str) -> HouseholdView:
    """The policy's view for this user, audited (allowed or not) before anything is shown."""
    now = workspace_context(request).clock()
    if not household_exists(s, household):
        raise HTTPException(404)
    view = view_household(viewer_of(principal), load_household(s, household), now)
    audit_access(s, principal, action if view.allowed else f"{action}.refused", household=household, at=now)
    s.commit()
    if not view.allowed:
        raise HTTPException(403, "この世帯を表示する権限がありません。")
    return view


@router.get("/households/{household}")
def household_page(request: Request, household: str, principal: Principal = Depends(require_roles(COORDINATOR)),
                   s: Session = Depends(get_session)) -> Response:
    view = _load_view(request, s, principal, household, "household.view")
    referrals = visible_referrals(s, view)
    plan = visible_plan(s, view)
    can_plan = plan is None and view.route == "team" and principal.agency is None and taken_into_team(s, household)
    return render(request, "household.html", {
        "can_plan": can_plan,
        "view": view, "labels": labels.ALL, "referrals": _referral_rows(view, referrals),
        "plan": plan, "meetings": meetings_of(s, household, agency=principal.agency),
        "meeting_kinds": KIND_LABELS, "decisions": DECISION_LABELS,
    }, principal)


@router.get("/households/{household}/fhir")
def household_fhir(request: Request, household: str, principal: Principal = Depends(require_roles(COORDINATOR)),
                   s: Session = Depends(get_session)) -> Response:
    now = workspace_context(request).clock()
    if not household_exists(s, household):
        raise HTTPException(404)
    facts = load_household(s, household)
    view = view_household(viewer_of(principal), facts, now)
    audit_access(s, principal, "household.fhir" if view.allowed else "household.fhir.refused",
                 household=household, at=now)
    s.commit()
    if not view.allowed:
        raise HTTPException(403, "この世帯を表示する権限がありません。")
    works = {w.alert_id: w for w in s.scalars(
        select(AlertWork).where(AlertWork.alert_id.in_([a.alert_id for a in view.alerts])))}
    states = {a.alert_id: effective(works.get(a.alert_id), a.updated_at).state for a in view.alerts}
    bundle = build_bundle(view, facts, referrals=visible_referrals(s, view), plan=visible_plan(s, view),
                          alert_states=states, now=now)
    body = json.dumps(bundle, ensure_ascii=False, separators=(",", ":"))
    return Response(body, media_type="application/fhir+json", headers={
        "Cache-Control": "no-store",
        "Content-Disposition": f'attachment; filename="household-{household}.fhir.json"',
    })
