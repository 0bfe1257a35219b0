"""Hand-made hub rows for WC's service tests: a household, persons, and case/referral events in case_events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from hub.identity import Household, Person
from hub.store import CaseEvent
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
