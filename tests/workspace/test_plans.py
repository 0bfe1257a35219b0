"""Plan service: creation after the 重層的支援会議 decision, updates with versions, programme routing once,
hand-over, the overdue-monitoring query, and published events without goals or role text."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from workspace.wc_fixtures import H, add_household

from hub.db import make_engine, make_sessionmaker
from hub.pipeline.tables import HubOutbox
from hub.workspace import plans as svc
from hub.workspace.auth import Principal
from hub.workspace.models import Meeting, Referral
from hub.workspace.plan_rules import PlanInput, PlanRuleError
from schemas.envelope import CloudEvent

NOW = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
COORD = Principal("coord", "coordinator", None)
GOAL = "カナリア目標: 山田さんの就労"
ROLE = "カナリア役割: 家計簿の確認"
Sessions = sessionmaker[Session]


@pytest.fixture
def sessions(blank_db: str) -> Iterator[Sessions]:
    sm = make_sessionmaker(make_engine(blank_db))
    with sm.begin() as s:
        add_household(s)
        s.add(Meeting(id="m1", household_id=H, kind="team_meeting", state="held", alert_id=None, planned_on=None,
                      held_on=date(2026, 11, 20), members_present=["livelihood"], decision="take_into_team",
                      note_code=None, designation_id=None, created_by="coord", created_at=NOW, updated_at=NOW))
    yield sm
    sm.kw["bind"].dispose()


def _input(**kw: object) -> PlanInput:
    base: dict[str, object] = {"lead_agency": "livelihood", "roles": {"livelihood": ROLE}, "goals": [GOAL],
                               "programmes": [], "next_monitoring_on": date(2026, 12, 20)}
    base.update(kw)
    return PlanInput(**base)  # type: ignore[arg-type]


def test_updates_bump_the_version_route_programmes_once_and_refuse_stale_forms(sessions: Sessions) -> None:
    """Adding アウトリーチ opens one referral; saving again adds none; a form of an older version is refused."""
    with sessions.begin() as s:
        plan = svc.create_plan(s, COORD, H, _input(), now=NOW, prefix="t")
        pid = plan.id
    with sessions.begin() as s:
        svc.update_plan(s, COORD, pid, _input(programmes=["outreach"]), version=1, now=NOW, prefix="t")
    with sessions.begin() as s:
        svc.update_plan(s, COORD, pid, _input(programmes=["outreach"]), version=2, now=NOW, prefix="t")
    with sessions() as s:
        refs = s.scalars(select(Referral).where(Referral.target == "outreach")).all()
        assert [(r.household_id, r.from_agency, r.status) for r in refs] == [(H, "livelihood", "requested")]
        assert svc.get_plan(s, pid).version == 3  # type: ignore[union-attr]
    with sessions.begin() as s, pytest.raises(PlanRuleError, match="他の人"):
        svc.update_plan(s, COORD, pid, _input(), version=2, now=NOW, prefix="t")


def test_hand_over_after_evaluation_ends_the_plan_and_allows_a_new_one(sessions: Sessions) -> None:
    """evaluate → hand over to the 主担当 agency: the plan ends, takes no more monitoring, and a new plan may start."""
    with sessions.begin() as s:
        pid = svc.create_plan(s, COORD, H, _input(), now=NOW, prefix="t").id
    with sessions.begin() as s, pytest.raises(PlanRuleError):
        svc.record(s, COORD, pid, "hand_over", on=NOW.date(), text="", version=1, now=NOW, prefix="t")
    with sessions.begin() as s:
        svc.record(s, COORD, pid, "evaluate", on=NOW.date(), text="評価", version=1, now=NOW, prefix="t")
        svc.record(s, COORD, pid, "hand_over", on=NOW.date(), text="", version=2, now=NOW, prefix="t")
    with sessions.begin() as s:
        assert svc.get_plan(s, pid).state == "handed_over"  # type: ignore[union-attr]
        with pytest.raises(PlanRuleError):
            svc.record(s, COORD, pid, "monitor", on=NOW.date(), text="x", version=3, now=NOW, prefix="t",
                       next_monitoring_on=date(2027, 1, 1))
    with sessions.begin() as s:
        assert svc.create_plan(s, COORD, H, _input(), now=NOW, prefix="t").version == 1


def test_overdue_monitoring_lists_active_plans_past_their_day(sessions: Sessions) -> None:
    """The query the inbox uses: active plans whose monitoring day is before today, oldest first."""
    with sessions.begin() as s:
        pid = svc.create_plan(s, COORD, H, _input(), now=NOW, prefix="t").id
    with sessions() as s:
        assert svc.overdue_monitoring(s, date(2026, 12, 20)) == []
        assert [p.id for p in svc.overdue_monitoring(s, date(2026, 12, 21))] == [pid]
    with sessions.begin() as s:
        svc.record(s, COORD, pid, "evaluate", on=NOW.date(), text="評価", version=1, now=NOW, prefix="t")
    with sessions() as s:
        assert svc.overdue_monitoring(s, date(2026, 12, 21)) == []


def test_plan_events_carry_codes_and_dates_but_no_goal_or_role_text(sessions: Sessions) -> None:
    """plan.updated.v1 names agencies, programmes, state and the next date; the free text stays in the workspace."""
    with sessions.begin() as s:
        pid = svc.create_plan(s, COORD, H, _input(programmes=["participation"]), now=NOW, prefix="t").id
        svc.record(s, COORD, pid, "monitor", on=NOW.date(), text="カナリア記録 山田", version=1, now=NOW + timedelta(1),
                   prefix="t", next_monitoring_on=date(2027, 1, 10))
    with sessions() as s:
        events = [CloudEvent.from_json_bytes(r.value) for r in s.scalars(select(HubOutbox).order_by(HubOutbox.seq))]
    plan_events = [e for e in events if e.type == "jp.tsunagu.plan.updated.v1"]
    assert [e.data["change"] for e in plan_events] == ["created", "monitored"]
    assert plan_events[-1].data["next_monitoring_on"] == "2027-01-10" and plan_events[-1].data["version"] == 2
    assert plan_events[0].data["agencies"] == ["livelihood"] and plan_events[0].data["programmes"] == ["participation"]
    blob = b"".join(e.to_json_bytes() for e in events).decode()
    assert "カナリア" not in blob and "山田" not in blob
    assert {e.type for e in events} == {"jp.tsunagu.plan.updated.v1", "jp.tsunagu.referral.status.v1"}


def test_a_referral_to_the_team_follows_the_plan(sessions: Sessions) -> None:
    """An agency's referral to 多機関協働 goes in-progress when the plan is made and completed when it ends."""
    from hub.workspace.referrals import create_referral

    elderly = Principal("h1", "coordinator", "elderly")
    with sessions.begin() as s:
        rid = create_referral(s, elderly, household=H, target="multi_agency", now=NOW, prefix="t",
                              from_agency="elderly").id
        other = create_referral(s, elderly, household=H, target="livelihood", now=NOW, prefix="t",
                                from_agency="elderly").id
    with sessions.begin() as s:
        pid = svc.create_plan(s, COORD, H, _input(), now=NOW, prefix="t").id
    with sessions() as s:
        assert s.scalars(select(Referral.status).where(Referral.id == rid)).one() == "in-progress"
        assert s.scalars(select(Referral.status).where(Referral.id == other)).one() == "requested"
    with sessions.begin() as s:
        svc.record(s, COORD, pid, "evaluate", on=NOW.date(), text="評価", version=1, now=NOW, prefix="t")
        svc.record(s, COORD, pid, "close", on=NOW.date(), text="", version=2, now=NOW, prefix="t", reason="stable")
    with sessions() as s:
        assert s.scalars(select(Referral.status).where(Referral.id == rid)).one() == "completed"
