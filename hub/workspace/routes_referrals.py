"""The /referrals screens: open and overdue referrals (つなぎ), a referral's history, create one, move it on."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from hub.workspace import referrals as svc
from hub.workspace.auth import TEAM, Principal, csrf_protect, require_roles, workspace_context
from hub.workspace.figures import target_label
from hub.workspace.referral_rules import NEEDS_REASON, REASONS, WORKSPACE_TARGETS
from hub.workspace.web import get_session
from hub.workspace.web import render as _render

router = APIRouter()
Team = Annotated[Principal, Depends(require_roles(*TEAM))]
Db = Annotated[Session, Depends(get_session)]


def render(request: Request, name: str, ctx: dict[str, object], principal: Principal, **kw: Any) -> HTMLResponse:
    return _render(request, name, {"target_label": target_label, **ctx}, principal, **kw)


def _list_page(request: Request, principal: Principal, s: Session, *, show: str, error: str | None = None,
               status_code: int = 200) -> HTMLResponse:
    ctx = workspace_context(request)
    now, days = ctx.clock(), ctx.settings.referral_overdue_days
    rows = svc.list_referrals(s, now=now, overdue_days=days, include_closed=show == "all", principal=principal)
    return render(request, "referrals.html", {
        "rows": rows, "overdue": [r for r in rows if r.overdue], "show": show, "overdue_days": days,
        "reasons": REASONS, "needs_reason": NEEDS_REASON,
    }, principal, error=error, status_code=status_code)


@router.get("/referrals", response_class=HTMLResponse)
def referrals_page(request: Request, principal: Team, s: Db, show: str = "open") -> HTMLResponse:
    return _list_page(request, principal, s, show="all" if show == "all" else "open")


@router.get("/referrals/new", response_class=HTMLResponse)
def new_referral_page(request: Request, principal: Team, household: str = "", person: str = "") -> HTMLResponse:
    return render(request, "referral_new.html", {"household": household, "person": person,
                                                 "targets": WORKSPACE_TARGETS}, principal)


@router.post("/referrals", response_class=HTMLResponse)
def create_referral(request: Request, principal: Team, s: Db, household: Annotated[str, Form()] = "",
                    target: Annotated[str, Form()] = "", person: Annotated[str, Form()] = "",
                    _csrf: Principal = Depends(csrf_protect)) -> Response:
    ctx = workspace_context(request)
    try:
        r = svc.create_referral(s, principal, household=household.strip(), target=target, now=ctx.clock(),
                                prefix=ctx.settings.topic_prefix, person_id=person or None,
                                from_agency=principal.agency)
    except svc.ReferralError as exc:
        s.rollback()
        return render(request, "referral_new.html", {"household": household, "person": person,
                                                     "targets": WORKSPACE_TARGETS, "target": target},
                      principal, error=str(exc), status_code=400)
    s.commit()
    return RedirectResponse(f"/referrals/{r.id}?flash=saved", status_code=303)


@router.get("/referrals/{referral_id}", response_class=HTMLResponse)
def referral_page(request: Request, referral_id: str, principal: Team, s: Db) -> HTMLResponse:
    ctx = workspace_context(request)
    r = svc.get_referral(s, referral_id)
    if r is None or not svc.may_see(principal, r, s, ctx.clock()):
        raise HTTPException(404)
    from hub.workspace.audit import audit_access

    audit_access(s, principal, "referral.view", household=r.household_id, object_id=f"referral:{r.id}")
    s.commit()
    this = svc.view_of(r, ctx.clock(), ctx.settings.referral_overdue_days)
    nxt = [t for t in this.next_statuses if svc.may_change(principal, r, t)]
    return render(request, "referral.html", {"r": this, "history": svc.history(s, r.id), "next_statuses": nxt,
                                             "reasons": REASONS, "needs_reason": NEEDS_REASON}, principal)


@router.post("/referrals/{referral_id}/status", response_class=HTMLResponse)
def change_status(request: Request, referral_id: str, principal: Team, s: Db,
                  status: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "",
                  back: Annotated[str, Form()] = "", _csrf: Principal = Depends(csrf_protect)) -> Response:
    ctx = workspace_context(request)
    try:
        svc.change_status(s, principal, referral_id, status, now=ctx.clock(), prefix=ctx.settings.topic_prefix,
                          reason=reason or None)
    except svc.ReferralError as exc:
        s.rollback()
        return _list_page(request, principal, s, show="open", error=str(exc), status_code=409)
    s.commit()
    target = "/referrals" if back == "list" else f"/referrals/{referral_id}"
    return RedirectResponse(f"{target}?flash=saved", status_code=303)
