"""Plans through the screens on consented sample households: the whole cycle, and what a withdrawal hides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from workspace.support import Workspace, csrf_in
from workspace.wc_fixtures import take_into_team, team_households, withdrawn_household

from consent.store import AuditLogRow
from hub.pipeline.tables import HubOutbox
from hub.workspace.models import Plan, PlanEntry, Referral

NOW = datetime(2026, 12, 1, 1, 5, tzinfo=UTC)  # 10:05 JST
LATER = datetime(2026, 12, 21, 1, 0, tzinfo=UTC)


def _plan_form(household: str, token: str, next_day: str) -> dict[str, object]:
    return {"household": household, "lead_agency": "livelihood", "role_livelihood": "家計改善支援",
            "role_elderly": "介護の調整", "goals": "就労の準備\n家計の見直し", "programmes": ["participation"],
            "next_monitoring_on": next_day, "csrf_token": token}


def test_the_plan_cycle_through_the_screens(seeded_workspace: Workspace) -> None:
    """Refused before the team meeting; then create (routes to 参加支援), monitor, overdue later, evaluate, close."""
    ws = seeded_workspace
    ws.clock.now = NOW
    with ws.sessions() as s:
        household = team_households(s, NOW, LATER)[0]
    c = ws.client("coordinator")
    form = c.get(f"/plans/new?household={household}")
    assert "重層的支援会議の決定を記録してください" in form.text
    token = csrf_in(form.text)
    refused = c.post("/plans", data=_plan_form(household, token, "2026-12-15"))
    assert refused.status_code == 400 and "重層的支援会議で多機関協働の対象とする決定" in refused.text
    with ws.sessions.begin() as s:
        take_into_team(s, household, NOW)
    form = c.get(f"/plans/new?household={household}")
    assert "主担当機関" in form.text
    r = c.post("/plans", data=_plan_form(household, token, "2026-12-15"), follow_redirects=False)
    assert r.status_code == 303, r.text
    plan_url = r.headers["location"].split("?")[0]
    page = c.get(plan_url)
    assert "家計改善支援" in page.text and "2026年12月15日" in page.text
    with ws.sessions() as s:
        plan = s.scalars(select(Plan)).one()
        assert [x.target for x in s.scalars(select(Referral).where(Referral.target == "participation"))] == [
            "participation"]
        assert any(b"jp.tsunagu.plan.updated.v1" in o.value for o in s.scalars(select(HubOutbox)))
    again = c.post("/plans", data=_plan_form(household, token, "2026-12-15"))
    assert again.status_code == 400 and "進行中のプラン" in again.text

    def act(**fields: str) -> None:
        r = c.post(f"{plan_url}/entries", data={"csrf_token": token, **fields}, follow_redirects=False)
        assert r.status_code == 303, r.text

    act(action="monitor", on="2026-12-01", text="面談を実施", next_monitoring_on="2026-12-20", version="1")
    stale = c.post(f"{plan_url}/entries", data={"csrf_token": token, "action": "evaluate", "on": "2026-12-01",
                                                "text": "x", "version": "1"})
    assert stale.status_code == 409 and "他の人がこのプランを更新しました" in stale.text
    ws.clock.now = LATER  # 20 days on: log in again
    c = ws.client("coordinator")
    listing = c.get("/plans")
    assert "期日超過" in listing.text
    token = csrf_in(listing.text)
    act(action="evaluate", on="2026-12-21", text="目標を一部達成", version="2")
    early = c.post(f"{plan_url}/entries", data={"csrf_token": token, "action": "close", "on": "2026-12-21",
                                                "version": "3"})
    assert early.status_code == 409 and "終結の理由" in early.text
    act(action="close", on="2026-12-21", reason="goals_met", text="", version="3")
    with ws.sessions() as s:
        done = s.get(Plan, plan.id)
        assert done is not None and (done.state, done.closed_reason, done.version) == ("closed", "goals_met", 4)
        assert [e.kind for e in s.scalars(select(PlanEntry).order_by(PlanEntry.id))] == [
            "monitoring", "evaluation", "closure"]
        actions = {a for (a,) in s.execute(select(AuditLogRow.action).where(AuditLogRow.user == "coordinator"))}
    assert {"plan.create", "plan.view", "plan.monitor", "plan.evaluate", "plan.close"} <= actions


def test_a_withdrawal_hides_the_plan_content_and_stops_changes(seeded_workspace: Workspace) -> None:
    """A plan made under consent: after the withdrawal its roles, goals and entries are no longer shown or editable."""
    ws = seeded_workspace
    with ws.sessions() as s:
        household, withdrawn_at = withdrawn_household(s)
    before = withdrawn_at - timedelta(days=2)
    ws.clock.now = before
    with ws.sessions.begin() as s:
        take_into_team(s, household, before)
    c = ws.client("coordinator")
    token = csrf_in(c.get(f"/plans/new?household={household}").text)
    next_day = (withdrawn_at + timedelta(days=30)).date().isoformat()
    r = c.post("/plans", data=_plan_form(household, token, next_day), follow_redirects=False)
    assert r.status_code == 303, r.text
    plan_url = r.headers["location"].split("?")[0]
    assert "家計改善支援" in c.get(plan_url).text
    ws.clock.now = withdrawn_at + timedelta(hours=1)
    c = ws.client("coordinator")
    page = c.get(plan_url)
    assert page.status_code == 200
    assert "本人同意が撤回されたか確認できない" in page.text
    assert "家計改善支援" not in page.text and "就労の準備" not in page.text
    assert c.get(f"{plan_url}/edit").status_code == 409
    form = _plan_form(household, csrf_in(page.text), next_day) | {"version": "1"}
    assert c.post(plan_url, data=form).status_code == 409
    with ws.sessions() as s:
        assert s.scalars(select(Plan.version)).one() == 1
