"""Referral service: import from hub events (idempotent), moves by the receiving agency's events, coordinator
entries, access by agency, and every change audited and published in the same transaction."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker
from workspace.wc_fixtures import NAME, T0, H, P, add_event, add_household

from consent.store import AuditLogRow, DesignationRow
from hub.db import make_engine, make_sessionmaker
from hub.pipeline.tables import CaseEvent, HubOutbox
from hub.workspace import referrals as svc
from hub.workspace.auth import Principal
from hub.workspace.models import Referral, ReferralChange
from schemas.codes import Field
from schemas.envelope import CloudEvent

REF = "jp.tsunagu.referral.requested.v1"
COORD = Principal("coord", "coordinator", None)

Sessions = sessionmaker[Session]


@pytest.fixture
def sessions(blank_db: str) -> Iterator[sessionmaker[Session]]:
    sm = make_sessionmaker(make_engine(blank_db))
    with sm.begin() as s:
        add_household(s)
    yield sm
    sm.kw["bind"].dispose()


def _outbox(s: Session) -> list[CloudEvent]:
    return [CloudEvent.from_json_bytes(r.value) for r in s.scalars(select(HubOutbox).order_by(HubOutbox.seq))]


def test_sync_imports_each_referral_event_once_and_the_receiving_agency_moves_it(sessions: Sessions) -> None:
    """elderly → livelihood: imported as requested; livelihood's intake, work and close move it to completed."""
    with sessions.begin() as s:
        add_event(s, "r1", REF, field="elderly", days=0)
        add_event(s, "c0", "jp.tsunagu.case.opened.v1", field="livelihood", days=-10)  # before the request
        add_event(s, "c1", "jp.tsunagu.case.opened.v1", field="livelihood", days=3, status="intake")
    with sessions.begin() as s:
        res = svc.sync_referrals(s, now=T0 + timedelta(days=4), prefix="t")
    assert (res.imported, res.moved) == (1, 1)
    with sessions.begin() as s:
        assert svc.sync_referrals(s, now=T0 + timedelta(days=5), prefix="t") == svc.SyncResult(0, 0, 0)
        r = s.scalars(select(Referral)).one()
        assert (r.status, r.origin, r.target, r.from_agency, r.household_id) == ("accepted", "event", "livelihood",
                                                                               "elderly", H)
        add_event(s, "c2", "jp.tsunagu.case.updated.v1", field="livelihood", days=6, status="in_progress")
        add_event(s, "c3", "jp.tsunagu.case.closed.v1", field="livelihood", days=40, status="closed")
    with sessions.begin() as s:
        assert svc.sync_referrals(s, now=T0 + timedelta(days=41), prefix="t").moved == 2
    with sessions() as s:
        changes = s.scalars(select(ReferralChange).order_by(ReferralChange.id)).all()
        assert [(c.from_status, c.to_status, c.by) for c in changes] == [
            (None, "requested", "event:r1"), ("requested", "accepted", "event:c1"),
            ("accepted", "in-progress", "event:c2"), ("in-progress", "completed", "event:c3")]
        events = _outbox(s)
        assert [e.data["status"] for e in events] == ["requested", "accepted", "in-progress", "completed"]
        assert all(e.type == "jp.tsunagu.referral.status.v1" for e in events)
        assert {r.topic for r in s.scalars(select(HubOutbox))} == {"t.workspace.v1"}
        assert all(NAME not in e.to_json_bytes().decode() and P not in e.to_json_bytes().decode() for e in events)
        audited = s.scalars(select(AuditLogRow).where(AuditLogRow.action.like("referral.%"))).all()
        assert len(audited) == 4 and {a.user for a in audited} == {"tsunagu-hub"}


def test_a_coordinator_rejects_with_a_reason_and_the_change_is_audited_with_the_user(sessions: Sessions) -> None:
    """A rejection needs a reason code; it is stored, audited with the user and published, in one commit."""
    with sessions.begin() as s:
        r = svc.create_referral(s, COORD, household=H, target="outreach", now=T0, prefix="t")
        rid = r.id
    with sessions.begin() as s, pytest.raises(svc.ReferralError, match="理由"):
        svc.change_status(s, COORD, rid, "rejected", now=T0, prefix="t")
    with sessions.begin() as s:
        svc.change_status(s, COORD, rid, "rejected", now=T0 + timedelta(hours=1), prefix="t", reason="no_capacity")
    with sessions() as s:
        r = s.scalars(select(Referral).where(Referral.id == rid)).one()
        assert (r.status, r.reason, r.updated_by) == ("rejected", "no_capacity", "coord")
        last = _outbox(s)[-1]
        assert last.data == {"referral": rid, "household": H, "origin": "coordinator", "from_agency": "multi_agency",
                                  "target": "outreach", "status": "rejected", "previous": "requested",
                                  "reason": "no_capacity", "by": "coord"}
        users = [a.user for a in s.scalars(select(AuditLogRow).where(AuditLogRow.action == "referral.rejected"))]
        assert users == ["coord"]
    with sessions.begin() as s, pytest.raises(svc.ReferralError, match="変更できません"):
        svc.change_status(s, COORD, rid, "accepted", now=T0, prefix="t")


def test_a_failed_change_leaves_no_trace(sessions: Sessions) -> None:
    """A refused transition rolls back: no change row, no audit entry, no outbox message."""
    with sessions.begin() as s:
        rid = svc.create_referral(s, COORD, household=H, target="child", now=T0, prefix="t").id
    with sessions() as s:
        counts = (s.scalar(select(func.count()).select_from(ReferralChange)),
                  s.scalar(select(func.count()).select_from(HubOutbox)),
                  s.scalar(select(func.count()).select_from(AuditLogRow)))
    with pytest.raises(svc.ReferralError), sessions.begin() as s:
        svc.change_status(s, COORD, rid, "completed", now=T0, prefix="t")
        svc.change_status(s, COORD, rid, "accepted", now=T0, prefix="t")
    with sessions() as s:
        assert s.scalars(select(Referral.status).where(Referral.id == rid)).one() == "requested"
        assert counts == (s.scalar(select(func.count()).select_from(ReferralChange)),
                          s.scalar(select(func.count()).select_from(HubOutbox)),
                          s.scalar(select(func.count()).select_from(AuditLogRow)))


def test_creation_checks_target_household_and_person(sessions: Sessions) -> None:
    """Unknown targets, households, or a person of another household are refused with a Japanese message."""
    with sessions.begin() as s:
        add_household(s, "h-other", ("p-other",))
    with sessions.begin() as s:
        with pytest.raises(svc.ReferralError, match="つなぎ先"):
            svc.create_referral(s, COORD, household=H, target="hospital", now=T0, prefix="t")
        with pytest.raises(svc.ReferralError, match="世帯が見つかりません"):
            svc.create_referral(s, COORD, household="h-none", target="child", now=T0, prefix="t")
        with pytest.raises(svc.ReferralError, match="その世帯の方"):
            svc.create_referral(s, COORD, household=H, target="child", now=T0, prefix="t", person_id="p-other")
        with pytest.raises(svc.ReferralError, match="同じ機関"):
            svc.create_referral(s, Principal("k", "coordinator", "child"), household=H, target="child", now=T0,
                                prefix="t", from_agency="child")


def test_a_coordinator_referral_with_a_person_moves_with_that_agencys_events(sessions: Sessions) -> None:
    """A referral the team makes for a member to disability is accepted by disability's next intake event."""
    with sessions.begin() as s:
        rid = svc.create_referral(s, COORD, household=H, target="disability", now=T0, prefix="t", person_id=P).id
        add_event(s, "d1", "jp.tsunagu.case.opened.v1", field="disability", days=2, status="intake")
    with sessions.begin() as s:
        svc.sync_referrals(s, now=T0 + timedelta(days=3), prefix="t")
    with sessions() as s:
        assert s.scalars(select(Referral.status).where(Referral.id == rid)).one() == "accepted"


def test_agency_users_see_and_answer_only_their_own_referrals(sessions: Sessions) -> None:
    """The receiving agency may accept; another agency neither sees nor changes it; the sender may only cancel."""
    with sessions.begin() as s:
        rid = svc.create_referral(s, Principal("h1", "coordinator", "elderly"), household=H, target="livelihood",
                                  now=T0, prefix="t", from_agency="elderly").id
    child = Principal("k1", "coordinator", "child")
    livelihood = Principal("j1", "coordinator", "livelihood")
    elderly = Principal("h1", "coordinator", "elderly")
    with sessions.begin() as s:
        assert svc.list_referrals(s, now=T0, overdue_days=14, principal=child) == []
        assert [v.id for v in svc.list_referrals(s, now=T0, overdue_days=14, principal=livelihood)] == [rid]
        with pytest.raises(svc.ReferralError, match="見つかりません"):
            svc.change_status(s, child, rid, "accepted", now=T0, prefix="t")
        with pytest.raises(svc.ReferralError, match="権限"):
            svc.change_status(s, elderly, rid, "accepted", now=T0, prefix="t")
    with sessions.begin() as s:
        svc.change_status(s, livelihood, rid, "accepted", now=T0, prefix="t")
    with sessions.begin() as s:
        with pytest.raises(svc.ReferralError, match="権限"):
            svc.change_status(s, livelihood, rid, "cancelled", now=T0, prefix="t", reason="other")
        svc.change_status(s, elderly, rid, "cancelled", now=T0, prefix="t", reason="duplicate")


def test_overdue_lists_only_unaccepted_referrals_past_the_setting(sessions: Sessions) -> None:
    """With 14 days, a 15-day-old requested referral is overdue; an accepted one never is."""
    with sessions.begin() as s:
        a = svc.create_referral(s, COORD, household=H, target="child", now=T0, prefix="t").id
        b = svc.create_referral(s, COORD, household=H, target="elderly", now=T0, prefix="t").id
        svc.create_referral(s, COORD, household=H, target="livelihood", now=T0 + timedelta(days=10), prefix="t")
        svc.change_status(s, COORD, b, "accepted", now=T0, prefix="t")
    with sessions() as s:
        assert [v.id for v in svc.overdue_referrals(s, now=T0 + timedelta(days=15), overdue_days=14)] == [a]
        assert len(svc.overdue_referrals(s, now=T0 + timedelta(days=15), overdue_days=30)) == 0


def test_the_team_sees_an_agencies_referral_only_once_it_may_flow(sessions: Sessions) -> None:
    """Without consent the referral stays between the two agencies; consent (flowed event) or a 支援会議 with the
    sending agency lets the team see it — and an overdue one is only notified once the team may see it."""
    from datetime import date

    from consent.model import Designation
    from consent.store import ConsentRepository

    with sessions.begin() as s:
        add_event(s, "r1", REF, field="elderly", days=0)
        svc.sync_referrals(s, now=T0, prefix="t")
    livelihood = Principal("j1", "coordinator", "livelihood")
    now = T0 + timedelta(days=20)
    with sessions() as s:
        assert svc.list_referrals(s, now=now, overdue_days=14, principal=COORD) == []
        assert len(svc.list_referrals(s, now=now, overdue_days=14, principal=livelihood)) == 1
        from hub.workspace.notifications import gather_facts

        assert gather_facts(s, now).referrals == ()
    with sessions.begin() as s:
        ConsentRepository(s).add_designation(Designation(designation_id="d1", household=H,
                                                         member_agencies=(Field.ELDERLY, Field.LIVELIHOOD),
                                                         start=date(2026, 6, 10), end=None, designated_by="coord"))
    with sessions() as s:
        assert len(svc.list_referrals(s, now=now, overdue_days=14, principal=COORD)) == 1
        assert svc.list_referrals(s, now=T0 + timedelta(days=5), overdue_days=14, principal=COORD) == []
        assert len(gather_facts(s, now).referrals) == 1
    with sessions.begin() as s:
        s.execute(delete(DesignationRow))
        s.execute(update(CaseEvent).values(team_published=True))
    with sessions() as s:
        assert len(svc.list_referrals(s, now=now, overdue_days=14, principal=COORD)) == 1
