"""The /reports screen: yearly figures for 事業評価 and 国への実績報告 (counts only), and their CSV download."""

from __future__ import annotations

import csv
import io
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from hub.workspace.audit import audit_access
from hub.workspace.auth import TEAM, Principal, require_roles, workspace_context
from hub.workspace.figures import Figures, fiscal_year_label, fiscal_year_of
from hub.workspace.plans import today_jst
from hub.workspace.reports import yearly_figures
from hub.workspace.web import get_session, render

router = APIRouter()
Team = Annotated[Principal, Depends(require_roles(*TEAM))]
Db = Annotated[Session, Depends(get_session)]
FIRST_YEAR = 2019


def _year(request: Request, fy: int | None) -> tuple[int, int]:
    current = fiscal_year_of(today_jst(workspace_context(request).clock()))
    if fy is None or not FIRST_YEAR <= fy <= current:
        return current, current
    return fy, current


def _sections(figures: Figures) -> list[tuple[str, list[tuple[str, int]]]]:
    out: list[tuple[str, list[tuple[str, int]]]] = []
    for row in figures.rows:
        if not out or out[-1][0] != row.section:
            out.append((row.section, []))
        out[-1][1].append((row.item, row.value))
    return out


@router.get("/reports", response_class=HTMLResponse)
def reports_page(request: Request, principal: Team, s: Db, fy: int | None = None) -> HTMLResponse:
    year, current = _year(request, fy)
    figures = yearly_figures(s, year)
    years = [(y, fiscal_year_label(y)) for y in range(current, FIRST_YEAR - 1, -1)]
    return render(request, "reports.html", {"figures": figures, "sections": _sections(figures), "years": years,
                                            "year": year}, principal)


@router.get("/reports.csv")
def reports_csv(request: Request, principal: Team, s: Db, fy: int | None = None) -> Response:
    """UTF-8 with BOM, CRLF lines: opens as Japanese text in spreadsheet software. The download is audited."""
    year, _current = _year(request, fy)
    figures = yearly_figures(s, year)
    audit_access(s, principal, "report.csv", object_id=f"report:{year}")
    s.commit()
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(figures.csv_rows())
    body = "\ufeff" + buf.getvalue()
    return Response(body.encode("utf-8"), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="tsunagu-figures-FY{year}.csv"',
        "Cache-Control": "no-store"})
