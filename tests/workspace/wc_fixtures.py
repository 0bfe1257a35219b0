"""Hand-made hub rows for WC's service tests: a household, persons, and case/referral events in case_events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from hub.identity.tables import Household, Person
from hub.pipeline.tables import CaseEvent
from schemas.envelope import CloudEvent

T0 = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)
H = "h-wc000000000000001"
P = "p-wc000000000000001"
NAME = "カナリア 山田太郎"


def add_household(s: Session, household: str = H, persons: tuple[str, ...] = (P,)) -> None:
    s.add(Household(id=household, household_no=None, origin="source", named_by=None))
    for p in persons:
        s.add(Person(id=p, resident_no=None, household_id=household, created_by="test", created_at=T0))
    s.flush()


def add_event(s: Session, eid: str, etype: str, *, field: str, days: float, person: str = P,
              household: str = H, status: str = "intake", to: str = "livelihood",
              team_published: bool = False) -> CloudEvent:
    record = f"houkatsu:C01-{eid}" if field == "elderly" else f"jiritsu:J-{eid}"
    if etype == "jp.tsunagu.referral.requested.v1":
        data = {"feed": "houkatsu", "case": record, "to": to, "requested_on": "2026-06-01",
                "subject": {"record": record, "name": NAME}}
    else:
        data = {"status": status, "subject": {"record": record, "name": NAME}}
    ev = CloudEvent(id=eid, source=f"urn:tsunagu:test:{field}", type=etype, time=T0 + timedelta(days=days),
                    sourcerecord=record, field=field, person=person, household=household, data=data)
    s.add(CaseEvent(event_id=ev.id, source=ev.source, record=record, person_id=person, household_id=household,
                    field=field, type=etype, time=ev.time, team_published=team_published, payload=ev.to_json_bytes()))
    s.flush()
    return ev


def team_households(s: Session, *times: datetime) -> list[str]:
    """Sample households on the team route (a consent in force names a member) at every one of ``times``."""
    from sqlalchemy import select

    from hub.workspace.households import load_household
    from hub.workspace.policy import Viewer, view_household

    coord = Viewer("coordinator", "coordinator", None)
    out = []
    for h in sorted({h for (h,) in s.execute(select(Person.household_id)) if h}):
        facts = load_household(s, h)
        if all(view_household(coord, facts, t).route == "team" for t in times):
            out.append(h)
    return out


def withdrawn_household(s: Session) -> tuple[str, datetime]:
    """A sample household on the team route until a withdrawal, and on no route with names after it."""
    from sqlalchemy import select

    from hub.workspace.households import load_household
    from hub.workspace.policy import Viewer, view_household

    coord = Viewer("coordinator", "coordinator", None)
    for h in sorted({h for (h,) in s.execute(select(Person.household_id)) if h}):
        facts = load_household(s, h)
        for versions in facts.consents.values():
            ends = [v.version for v in versions if v.status == "inactive"]
            if not ends:
                continue
            at = min(ends)
            if view_household(coord, facts, at - timedelta(hours=1)).route == "team" and \
                    view_household(coord, facts, at + timedelta(hours=1)).route != "team":
                return h, at
    raise AssertionError("the samples hold a household whose only consent is withdrawn")


def take_into_team(s: Session, household: str, at: datetime) -> None:
    """What WB's /meetings records when a 重層的支援会議 takes a consented household into 多機関協働."""
    from hub.workspace.models import Meeting

    s.add(Meeting(id=f"m-{household}", household_id=household, kind="team_meeting", state="held", alert_id=None,
                  planned_on=None, held_on=at.date(), members_present=["elderly", "livelihood"],
                  decision="take_into_team", note_code=None, designation_id=None, created_by="coordinator",
                  created_at=at, updated_at=at))
