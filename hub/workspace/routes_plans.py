"""The /plans screens: プラン of households in 多機関協働 — make, change, monitor, evaluate, close, hand over."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from hub.workspace import plans as svc
from hub.workspace.audit import audit_access
from hub.workspace.auth import TEAM, Principal, csrf_protect, require_roles, workspace_context
from hub.workspace.figures import target_label
from hub.workspace.models import Plan
from hub.workspace.plan_rules import (
    ACTIONS,
    AGENCIES,
    CLOSE_REASONS,
    PROGRAMMES,
    PlanAction,
    PlanInput,
    PlanRuleError,
    allowed_actions,
    monitoring_overdue,
)
from hub.workspace.referrals import household_exists
from hub.workspace.web import get_session
from hub.workspace.web import render as _render

router = APIRouter()
Team = Annotated[Principal, Depends(require_roles(*TEAM))]
Db = Annotated[Session, Depends(get_session)]

ACTION_LABELS: dict[str, str] = {
    "monitor": "モニタリングを記録する",
    "evaluate": "評価を記録する",
    "resume": "プランを見直して支援を続ける",
    "close": "終結する",
    "hand_over": "主担当機関へ引き継ぐ",
}
ENTRY_LABELS = {"monitoring": "モニタリング", "evaluation": "評価", "closure": "終結", "handover": "引継ぎ"}


def render(request: Request, name: str, ctx: dict[str, Any], principal: Principal, **kw: Any) -> HTMLResponse:
    base = {"target_label": target_label, "agencies": AGENCIES, "programmes": PROGRAMMES,
            "close_reasons": CLOSE_REASONS, "action_labels": ACTION_LABELS, "entry_labels": ENTRY_LABELS}
    return _render(request, name, {**base, **ctx}, principal, **kw)


def may_see(principal: Principal, plan: Plan) -> bool:
    """The team sees every plan; an agency's user the plans in which their agency has a role."""
    return principal.agency is None or principal.is_admin or principal.agency in plan.roles


def consented(s: Session, principal: Principal, household: str, now: datetime) -> bool:
    """The household is on the team route for this user now (a consent in force names a member).

    A plan rests on consent: after a withdrawal its content (roles, goals, entries) is no longer shown.
    """
    from hub.workspace.households import household_view

    return household_view(s, principal, household, now).route == "team"


def may_edit(principal: Principal) -> bool:
    """Plans are the multi-agency team's: only the team (no agency) and admin change them."""
    return principal.agency is None or principal.is_admin


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


async def _plan_input(request: Request) -> PlanInput:
    form = await request.form()

    def text(name: str) -> str:
        v = form.get(name)
        return v if isinstance(v, str) else ""

    roles = {a: text(f"role_{a}") for a in AGENCIES}
    goals = text("goals").splitlines()
    programmes = [v for v in form.getlist("programmes") if isinstance(v, str)]
    return PlanInput(text("lead_agency"), roles, goals, programmes, _date(text("next_monitoring_on")))


@router.get("/plans", response_class=HTMLResponse)
def plans_page(request: Request, principal: Team, s: Db, show: str = "open") -> HTMLResponse:
    today = svc.today_jst(workspace_context(request).clock())
    rows = [p for p in svc.list_plans(s, include_ended=show == "all") if may_see(principal, p)]
    overdue = {p.id for p in rows if monitoring_overdue(p.state, p.next_monitoring_on, today)}
    return render(request, "plans.html", {"rows": rows, "overdue": overdue, "show": show, "today": today}, principal)


@router.get("/plans/new", response_class=HTMLResponse)
def new_plan_page(request: Request, principal: Team, s: Db, household: str = "") -> HTMLResponse:
    if not may_edit(principal):
        raise HTTPException(403)
    now = workspace_context(request).clock()
    ready = bool(household) and svc.taken_into_team(s, household) and consented(s, principal, household, now)
    return render(request, "plan_form.html", {"household": household, "ready": ready, "plan": None,
                                              "values": None}, principal)


@router.post("/plans", response_class=HTMLResponse)
async def create_plan(request: Request, principal: Team, s: Db,
                      _csrf: Principal = Depends(csrf_protect)) -> Response:
    if not may_edit(principal):
        raise HTTPException(403)
    ctx = workspace_context(request)
    form = await request.form()
    household = str(form.get("household") or "").strip()
    data = await _plan_input(request)
    try:
        if household and household_exists(s, household) and not consented(s, principal, household, ctx.clock()):
            raise PlanRuleError("本人同意が確認できないため、プランは作成できません")
        plan = svc.create_plan(s, principal, household, data, now=ctx.clock(), prefix=ctx.settings.topic_prefix)
    except PlanRuleError as exc:
        s.rollback()
        return render(request, "plan_form.html", {"household": household, "ready": True, "plan": None,
                                                  "values": data}, principal, error=str(exc), status_code=400)
    s.commit()
    return RedirectResponse(f"/plans/{plan.id}?flash=saved", status_code=303)


def _plan_page(request: Request, principal: Principal, s: Session, plan: Plan, *, error: str | None = None,
               status_code: int = 200) -> HTMLResponse:
    now = workspace_context(request).clock()
    today = svc.today_jst(now)
    actions = allowed_actions(plan.state) if may_edit(principal) else []
    restricted = not consented(s, principal, plan.household_id, now)
    return render(request, "plan.html", {
        "plan": plan, "entries": svc.entries(s, plan.id), "today": today, "restricted": restricted,
        "overdue": monitoring_overdue(plan.state, plan.next_monitoring_on, today),
        "actions": [a for a in actions if a != "update"], "editable": "update" in actions and not restricted,
    }, principal, error=error, status_code=status_code)


def _load(s: Session, principal: Principal, plan_id: str) -> Plan:
    plan = svc.get_plan(s, plan_id)
    if plan is None or not may_see(principal, plan):
        raise HTTPException(404)
    return plan


@router.get("/plans/{plan_id}", response_class=HTMLResponse)
def plan_page(request: Request, plan_id: str, principal: Team, s: Db) -> HTMLResponse:
    plan = _load(s, principal, plan_id)
    audit_access(s, principal, "plan.view", household=plan.household_id, object_id=f"plan:{plan.id}")
    s.commit()
    return _plan_page(request, principal, s, plan)


@router.get("/plans/{plan_id}/edit", response_class=HTMLResponse)
def edit_plan_page(request: Request, plan_id: str, principal: Team, s: Db) -> HTMLResponse:
    plan = _load(s, principal, plan_id)
    if not may_edit(principal):
        raise HTTPException(403)
    if not consented(s, principal, plan.household_id, workspace_context(request).clock()):
        return _plan_page(request, principal, s, plan, error="本人同意が確認できないため、プランは変更できません",
                          status_code=409)
    values = PlanInput(plan.lead_agency, plan.roles, plan.goals, plan.programmes, plan.next_monitoring_on)
    return render(request, "plan_form.html", {"household": plan.household_id, "ready": True, "plan": plan,
                                              "values": values}, principal)


@router.post("/plans/{plan_id}", response_class=HTMLResponse)
async def update_plan(request: Request, plan_id: str, principal: Team, s: Db,
                      _csrf: Principal = Depends(csrf_protect)) -> Response:
    if not may_edit(principal):
        raise HTTPException(403)
    ctx = workspace_context(request)
    form = await request.form()
    data = await _plan_input(request)
    version = _int(str(form.get("version") or ""))
    try:
        current = _load(s, principal, plan_id)
        if not consented(s, principal, current.household_id, ctx.clock()):
            raise PlanRuleError("本人同意が確認できないため、プランは変更できません")
        svc.update_plan(s, principal, plan_id, data, version=version, now=ctx.clock(),
                        prefix=ctx.settings.topic_prefix)
    except PlanRuleError as exc:
        s.rollback()
        plan = _load(s, principal, plan_id)
        return render(request, "plan_form.html", {"household": plan.household_id, "ready": True, "plan": plan,
                                                  "values": data}, principal, error=str(exc), status_code=409)
    s.commit()
    return RedirectResponse(f"/plans/{plan_id}?flash=saved", status_code=303)


def _int(value: str) -> int | None:
    return int(value) if value.isdigit() else None


@router.post("/plans/{plan_id}/entries", response_class=HTMLResponse)
def record_entry(request: Request, plan_id: str, principal: Team, s: Db,
                 action: Annotated[str, Form()] = "", on: Annotated[str, Form()] = "",
                 text: Annotated[str, Form()] = "", next_monitoring_on: Annotated[str, Form()] = "",
                 reason: Annotated[str, Form()] = "", version: Annotated[str, Form()] = "",
                 _csrf: Principal = Depends(csrf_protect)) -> Response:
    if not may_edit(principal):
        raise HTTPException(403)
    _load(s, principal, plan_id)
    ctx = workspace_context(request)
    if action not in ACTIONS or action == "update":
        raise HTTPException(400, "不明な操作です")
    act: PlanAction = action  # type: ignore[assignment]
    try:
        svc.record(s, principal, plan_id, act, on=_date(on), text=text, version=_int(version), now=ctx.clock(),
                   prefix=ctx.settings.topic_prefix, next_monitoring_on=_date(next_monitoring_on),
                   reason=reason or None)
    except PlanRuleError as exc:
        s.rollback()
        return _plan_page(request, principal, s, _load(s, principal, plan_id), error=str(exc), status_code=409)
    s.commit()
    return RedirectResponse(f"/plans/{plan_id}?flash=recorded", status_code=303)
