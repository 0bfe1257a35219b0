"""The /meetings screens: 支援会議 and 重層的支援会議 agendas, their decisions, cancelling."""

from __future__ import annotations

from datetime import date
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from consent.model import JST
from hub.workspace import meetings as svc
from hub.workspace.auth import COORDINATOR, Principal, csrf_protect, require_roles, workspace_context
from hub.workspace.households import household_view
from hub.workspace.models import Meeting
from hub.workspace.web import get_session, render

router = APIRouter()


def _municipal(principal: Principal) -> None:
    """Only the municipal multi-agency team convenes meetings and records their decisions."""
    if not principal.may(COORDINATOR) or principal.agency is not None:
        raise HTTPException(403)


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


@router.get("/meetings")
def meetings_page(request: Request, principal: Principal = Depends(require_roles(COORDINATOR)),
                  s: Session = Depends(get_session)) -> Response:
    rows = svc.meetings_of(s, agency=principal.agency)
    return render(request, "meetings.html", {
        "agenda": [m for m in rows if m.state == "agenda"],
        "held": [m for m in rows if m.state == "held"],
        "cancelled": [m for m in rows if m.state == "cancelled"],
        "kinds": svc.KIND_LABELS, "decisions": svc.DECISION_LABELS,
    }, principal)


@router.post("/meetings")
def create_meeting(request: Request, kind: str = Form("support_meeting"), alert_id: str = Form(""),
                   household: str = Form(""), planned_on: str = Form(""),
                   principal: Principal = Depends(csrf_protect), s: Session = Depends(get_session)) -> Response:
    _municipal(principal)
    now = workspace_context(request).clock()
    try:
        meeting = svc.create_agenda(s, principal, kind=kind, now=now, household=household.strip() or None,
                                    alert_id=alert_id.strip() or None, planned_on=_date(planned_on))
    except LookupError:
        raise HTTPException(404) from None
    except svc.MeetingError as exc:
        s.rollback()
        raise HTTPException(400, str(exc)) from None
    s.commit()
    return RedirectResponse(f"/meetings/{quote(meeting.id)}?flash=saved", status_code=303)


def _load(s: Session, principal: Principal, meeting_id: str) -> Meeting:
    meeting = s.get(Meeting, meeting_id)
    if meeting is None or (principal.agency is not None and principal.agency not in (meeting.members_present or [])):
        raise HTTPException(404)
    return meeting


def _meeting_page(request: Request, s: Session, principal: Principal, meeting: Meeting, *,
                  error: str | None = None, status_code: int = 200) -> Response:
    from hub.workspace.audit import audit_access

    now = workspace_context(request).clock()
    view = household_view(s, principal, meeting.household_id, now)
    audit_access(s, principal, "meeting.view", household=meeting.household_id, object_id=meeting.id, at=now)
    s.commit()
    return render(request, "meeting.html", {
        "meeting": meeting, "view": view, "kinds": svc.KIND_LABELS, "decisions": svc.DECISION_LABELS,
        "choices": svc.DECISIONS.get(meeting.kind, ()), "fields": svc.field_choices(),
        "today": now.astimezone(JST).date(), "editable": principal.agency is None and meeting.state == "agenda",
    }, principal, error=error, status_code=status_code)


@router.get("/meetings/{meeting_id}")
def meeting_page(request: Request, meeting_id: str, principal: Principal = Depends(require_roles(COORDINATOR)),
                 s: Session = Depends(get_session)) -> Response:
    return _meeting_page(request, s, principal, _load(s, principal, meeting_id))


@router.post("/meetings/{meeting_id}/decision")
async def record_decision(request: Request, meeting_id: str, principal: Principal = Depends(csrf_protect),
                          s: Session = Depends(get_session)) -> Response:
    _municipal(principal)
    meeting = _load(s, principal, meeting_id)
    form = await request.form()
    now = workspace_context(request).clock()
    view = household_view(s, principal, meeting.household_id, now)
    try:
        svc.record_decision(s, principal, meeting, held_on=_date(str(form.get("held_on") or "")),
                            members_present=[str(v) for v in form.getlist("members_present")],
                            decision=str(form.get("decision") or ""), view=view, now=now)
    except svc.MeetingError as exc:
        s.rollback()
        return _meeting_page(request, s, principal, _load(s, principal, meeting_id), error=str(exc),
                             status_code=400)
    s.commit()
    if meeting.decision == "take_into_team":
        return RedirectResponse(f"/plans/new?household={quote(meeting.household_id)}", status_code=303)
    return RedirectResponse(f"/meetings/{quote(meeting.id)}?flash=recorded", status_code=303)


@router.post("/meetings/{meeting_id}/cancel")
def cancel_meeting(request: Request, meeting_id: str, principal: Principal = Depends(csrf_protect),
                   s: Session = Depends(get_session)) -> Response:
    _municipal(principal)
    meeting = _load(s, principal, meeting_id)
    try:
        svc.cancel(s, principal, meeting, workspace_context(request).clock())
    except svc.MeetingError as exc:
        s.rollback()
        return _meeting_page(request, s, principal, meeting, error=str(exc), status_code=400)
    s.commit()
    return RedirectResponse("/meetings?flash=saved", status_code=303)
