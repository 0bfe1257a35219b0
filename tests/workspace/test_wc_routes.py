"""WC's screens through the real app: /referrals, /plans, /reports (+CSV) — roles, CSRF, audit, Japanese and JST."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

from sqlalchemy import select
from workspace.support import Workspace, csrf_in
from workspace.wc_fixtures import NAME, H, add_event, add_household

from consent.store import AuditLogRow
from hub.pipeline.tables import CaseState
from hub.workspace.models import Meeting, Referral

NOW = datetime(2026, 12, 1, 1, 5, tzinfo=UTC)  # 10:05 JST


def _seed(ws: Workspace) -> None:
    ws.clock.now = NOW
    with ws.sessions.begin() as s:
        add_household(s)
        add_event(s, "r1", "jp.tsunagu.referral.requested.v1", field="elderly", days=0, team_published=True)
        s.add(Meeting(id="m1", household_id=H, kind="team_meeting", state="held", alert_id=None,
                      planned_on=None, held_on=date(2026, 11, 20), members_present=["elderly", "livelihood"],
                      decision="take_into_team", note_code=None, designation_id=None, created_by="coordinator",
                      created_at=NOW, updated_at=NOW))
    from hub.workspace.referrals import sync_referrals

    with ws.sessions.begin() as s:
        sync_referrals(s, now=NOW, prefix="wstest")


def _audit_actions(ws: Workspace) -> list[tuple[str | None, str | None]]:
    with ws.sessions() as s:
        return [(a.user, a.action) for a in s.scalars(select(AuditLogRow).where(AuditLogRow.user.is_not(None)))]


def test_only_the_team_and_admin_reach_referrals_plans_and_reports(workspace: Workspace) -> None:
    """Anonymous users go to /login; ops and consent officers are refused; coordinator and admin get the pages."""
    _seed(workspace)
    paths = ["/referrals", "/referrals/new", "/plans", f"/plans/new?household={H}", "/reports", "/reports.csv"]
    anon = workspace.client()
    for p in paths:
        r = anon.get(p, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), p
    for user in ("ops", "consent_officer"):
        c = workspace.client(user)
        for p in paths:
            assert c.get(p).status_code == 403, (user, p)
    for user in ("coordinator", "admin"):
        c = workspace.client(user)
        for p in paths:
            assert c.get(p).status_code == 200, (user, p)


def test_referral_list_shows_overdue_in_japanese_without_names_and_a_status_change_needs_csrf(
        workspace: Workspace) -> None:
    """The imported referral is overdue after 14 days, shown in JST with no name; a POST without CSRF is refused."""
    _seed(workspace)
    c = workspace.client("coordinator")
    page = c.get("/referrals")
    assert "受入れ期限を過ぎたつなぎ（1件）" in page.text and "期限超過" in page.text
    assert "2026年6月1日 09:00" in page.text  # T0 (00:00 UTC) in JST
    assert "183日" in page.text  # 1 June → 1 December
    assert NAME not in page.text and "houkatsu:C01" not in page.text
    with workspace.sessions() as s:
        rid = s.scalars(select(Referral)).one().id
    r = c.post(f"/referrals/{rid}/status", data={"status": "accepted"}, follow_redirects=False)
    assert r.status_code == 403
    r = c.post(f"/referrals/{rid}/status", data={"status": "accepted", "csrf_token": csrf_in(page.text)},
               follow_redirects=False)
    assert r.status_code == 303
    detail = c.get(r.headers["location"])
    assert "受理" in detail.text and "保存しました" in detail.text
    bad = c.post(f"/referrals/{rid}/status", data={"status": "requested", "csrf_token": csrf_in(page.text)})
    assert bad.status_code == 409 and "この状態からは変更できません" in bad.text
    assert ("coordinator", "referral.accepted") in _audit_actions(workspace)
    assert ("coordinator", "referral.view") in _audit_actions(workspace)


def test_a_coordinator_creates_a_referral_to_participation(workspace: Workspace) -> None:
    """The form makes a 参加支援事業 referral for the household; an unknown household is a 400 with a message."""
    _seed(workspace)
    c = workspace.client("coordinator")
    form = c.get(f"/referrals/new?household={H}")
    token = csrf_in(form.text)
    r = c.post("/referrals", data={"household": H, "target": "participation", "csrf_token": token},
               follow_redirects=False)
    assert r.status_code == 303
    assert "参加支援事業" in c.get(r.headers["location"]).text
    r = c.post("/referrals", data={"household": "h-nope", "target": "participation", "csrf_token": token})
    assert r.status_code == 400 and "世帯が見つかりません" in r.text


def test_a_plan_needs_consent_and_the_team_meeting_decision(workspace: Workspace) -> None:
    """Without consent and a 重層的支援会議 decision the form explains the way and creation is refused."""
    workspace.clock.now = NOW
    with workspace.sessions.begin() as s:
        add_household(s)
    c = workspace.client("coordinator")
    page = c.get(f"/plans/new?household={H}")
    assert "重層的支援会議の決定を記録してください" in page.text
    r = c.post("/plans", data={"household": H, "lead_agency": "livelihood", "role_livelihood": "x", "goals": "y",
                               "next_monitoring_on": "2026-12-15", "csrf_token": csrf_in(page.text)})
    assert r.status_code == 400 and "本人同意が確認できない" in r.text


def test_reports_count_the_year_and_download_as_audited_csv(workspace: Workspace) -> None:
    """/reports shows 令和8年度 figures from the tables; the CSV (BOM, CRLF) has the same numbers and is audited."""
    _seed(workspace)
    with workspace.sessions.begin() as s:
        for i, (field, opened) in enumerate([("elderly", date(2026, 5, 1)), ("child", date(2026, 7, 1)),
                                             ("child", date(2026, 3, 1))]):
            s.add(CaseState(case=f"c{i}", record=f"r{i}", person_id=None, household_id=H, feed="x", field=field,
                            status="intake", opened_on=opened, closed_on=None, topics=[], members={},
                            revision=NOW))
    c = workspace.client("coordinator")
    page = c.get("/reports")
    assert "令和8年度" in page.text and "相談受付件数（分野別）" in page.text
    r = c.get("/reports.csv?fy=2026")
    assert r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith("\ufeff".encode()) and b"\r\n" in r.content
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    values = {(sec, item): v for _fy, sec, item, v in rows[1:]}
    assert values[("相談受付件数（分野別）", "子ども")] == "1"
    assert values[("相談受付件数（分野別）", "合計")] == "2"
    assert values[("会議の開催件数", "重層的支援会議")] == "1"
    assert values[("多機関協働事業", "多機関協働の対象とした世帯数")] == "1"
    assert values[("つなぎ（紹介）の件数（つなぎ先・結果別）", "合計")] == "1"
    assert ("coordinator", "report.csv") in _audit_actions(workspace)
    last_year = c.get("/reports.csv?fy=2025").content.decode("utf-8-sig")
    assert "令和7年度" in last_year and ",子ども,1" in last_year
