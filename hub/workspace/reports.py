"""Yearly figures from the database: reads only fields, dates, states and codes, then aggregates them."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.pipeline.tables import CaseState
from hub.workspace.figures import (
    CaseRow,
    Figures,
    MeetingRow,
    PlanEndRow,
    PlanRow,
    ReferralRow,
    aggregate,
    fiscal_year_range,
)
from hub.workspace.models import Meeting, Plan, PlanEntry, Referral
from schemas.wareki import JST


def yearly_figures(s: Session, fy: int) -> Figures:
    """The figures of 年度 ``fy`` (no personal data is read beyond codes and dates)."""
    start, end = fiscal_year_range(fy)
    cases = [CaseRow(f, o, c, p) for f, o, c, p in s.execute(select(CaseState.field, CaseState.opened_on,
                                                                   CaseState.closed_on, CaseState.person_id))]
    meetings = [MeetingRow(h, k, st, d, dec) for h, k, st, d, dec in s.execute(
        select(Meeting.household_id, Meeting.kind, Meeting.state, Meeting.held_on, Meeting.decision))]
    plans = [PlanRow(h, at.astimezone(JST).date(), tuple(pr or ())) for h, at, pr in s.execute(
        select(Plan.household_id, Plan.created_at, Plan.programmes))]
    ends = [PlanEndRow(kind, on, reason) for kind, on, reason in s.execute(
        select(PlanEntry.kind, PlanEntry.on, Plan.closed_reason).join(Plan, Plan.id == PlanEntry.plan_id)
        .where(PlanEntry.kind.in_(("closure", "handover")), PlanEntry.on >= start, PlanEntry.on <= end))]
    refs = [ReferralRow(t, st, at.astimezone(JST).date()) for t, st, at in s.execute(
        select(Referral.target, Referral.status, Referral.requested_at))]
    return aggregate(fy, cases, meetings, plans, ends, refs)
