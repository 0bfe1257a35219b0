"""The alert inbox (/alerts): states, filters, counts, actions; each alert shown only as the sharing rules allow."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from consent.model import JST
from consent.store import DesignationRow
from hub.workspace.alert_work import CLOSE_REASONS, TransitionError, apply, inbox, overdue_plans
from hub.workspace.auth import COORDINATOR, Principal, csrf_protect, require_roles, workspace_context
from hub.workspace.households import household_view
from hub.workspace.labels import ALERT_KIND as KIND_LABELS
from hub.workspace.models import ALERT_STATES, User
from hub.workspace.policy import HouseholdView
from hub.workspace.web import get_session, render

router = APIRouter()

STATE_TABS = (*ALERT_STATES, "reopened")
#: alerts per inbox page (each row asks the policy about its household)
PAGE_SIZE = 50


def agency_households(s: Session, principal: Principal, now: datetime) -> set[str] | None:
    """The households an agency's user sits on a 支援会議 for (None: the municipal team sees every alert)."""
    if principal.agency is None:
        return None
    today = now.astimezone(JST).date()
    out: set[str] = set()
    for row in s.scalars(select(DesignationRow)):
        if principal.agency in (row.member_agencies or []) and row.start <= today and (
                row.end is None or today <= row.end):
            out.add(row.household)
    return out


def assignees(s: Session) -> list[str]:
    """The municipal team's users an alert can be assigned to."""
    return list(s.scalars(select(User.username).where(User.role.in_(("coordinator", "admin")),
                                                      User.agency.is_(None), User.disabled.is_(False))
                          .order_by(User.username)))


def _inbox_page(request: Request, s: Session, principal: Principal, *, kind: str | None, state: str | None,
                page: int = 1, error: str | None = None, status_code: int = 200) -> Response:
    ctx = workspace_context(request)
    now = ctx.clock()
    kind = kind if kind in KIND_LABELS else None
    state = state if state in STATE_TABS else None
    rows, counts = inbox(s, kind=kind, state=state, households=agency_households(s, principal, now))
    # the policy is asked only about the households on this page
    pages = max(1, -(-len(rows) // PAGE_SIZE))
    page = min(max(1, page), pages)
    views: dict[str, HouseholdView] = {}
    shown = []
    for r in rows[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]:
        if r.household not in views:
            views[r.household] = household_view(s, principal, r.household, now)
        v = views[r.household]
        if not v.allowed:
            continue
        alert = next((a for a in v.alerts if a.alert_id == r.alert_id), None)
        shown.append({"row": r, "alert": alert, "route": v.route})
    today = now.astimezone(JST).date()
    plans = overdue_plans(s, today) if principal.agency is None else []
    return render(request, "alerts.html", {
        "items": shown, "counts": counts, "kind": kind or "", "state": state or "", "kinds": KIND_LABELS,
        "states": STATE_TABS, "reasons": CLOSE_REASONS, "assignees": assignees(s), "plans": plans,
        "today": today, "page": page, "pages": pages,
    }, principal, status_code=status_code, error=error)


@router.get("/alerts")
def alerts_page(request: Request, kind: str | None = None, state: str | None = None, page: int = 1,
                principal: Principal = Depends(require_roles(COORDINATOR)),
                s: Session = Depends(get_session)) -> Response:
    return _inbox_page(request, s, principal, kind=kind, state=state, page=page)


def _act(request: Request, s: Session, principal: Principal, alert_id: str, action: str, *, kind: str,
         state: str, assignee: str | None = None, reason: str | None = None) -> Response:
    if not principal.may(COORDINATOR) or principal.agency is not None:
        raise HTTPException(403)  # the municipal multi-agency team works the inbox; agencies only look
    ctx = workspace_context(request)
    now = ctx.clock()
    allowed = agency_households(s, principal, now)
    from hub.pipeline.tables import AlertState

    alert = s.get(AlertState, alert_id)
    if alert is None or (allowed is not None and alert.household_id not in allowed):
        raise HTTPException(404)
    if action == "assign" and assignee not in assignees(s):
        return _inbox_page(request, s, principal, kind=kind, state=state, error="担当者を選んでください。",
                           status_code=422)
    try:
        apply(s, principal, alert_id, action, now, ctx.settings.topic_prefix, assignee=assignee, reason=reason)
    except TransitionError as exc:
        s.rollback()
        return _inbox_page(request, s, principal, kind=kind, state=state, error=str(exc), status_code=409)
    s.commit()
    query = {k: v for k, v in (("kind", kind), ("state", state), ("flash", "saved")) if v}
    return RedirectResponse(f"/alerts?{urlencode(query)}", status_code=303)


@router.post("/alerts/{alert_id}/acknowledge")
def acknowledge(request: Request, alert_id: str, kind: str = Form(""), state: str = Form(""),
                principal: Principal = Depends(csrf_protect), s: Session = Depends(get_session)) -> Response:
    return _act(request, s, principal, alert_id, "acknowledge", kind=kind, state=state)


@router.post("/alerts/{alert_id}/assign")
def assign(request: Request, alert_id: str, assignee: str = Form(""), kind: str = Form(""), state: str = Form(""),
           principal: Principal = Depends(csrf_protect), s: Session = Depends(get_session)) -> Response:
    return _act(request, s, principal, alert_id, "assign", kind=kind, state=state, assignee=assignee)


@router.post("/alerts/{alert_id}/close")
def close(request: Request, alert_id: str, reason: str = Form(""), kind: str = Form(""), state: str = Form(""),
          principal: Principal = Depends(csrf_protect), s: Session = Depends(get_session)) -> Response:
    return _act(request, s, principal, alert_id, "close", kind=kind, state=state, reason=reason)
