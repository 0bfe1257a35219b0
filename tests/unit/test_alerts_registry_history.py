"""Alerts from the hub's store when the registry reports a death or a 世帯主変更 (issue 13 item 2), both databases."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from sqlalchemy.orm import Session

from hub.db import Base, make_engine
from hub.identity.resolver import IdentityService
from hub.identity.tables import household_id_for_no
from hub.pipeline.adapters import evaluate_alerts, household_snapshot, resolve_identity
from hub.pipeline.tables import AlertState, CaseState
from schemas.codes import CaseStatus, Feed, Relation, Sex
from schemas.envelope import CloudEvent
from schemas.events import CaseV1, PersonRecord, ResidentObservedV1
from schemas.registry_codes import MoveReason, ResidentStatus

HH = "5033103552"
TODAY = date(2026, 12, 1)
DIED = date(2026, 7, 10)


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    """Fresh hub tables on SQLite and on PostgreSQL."""
    engine = make_engine(database_url)
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        yield s
    engine.dispose()


def row(no: str, name: str, birth: date, relation: Relation, **extra: object) -> ResidentObservedV1:
    person = PersonRecord(record=f"registry:{no}", name=name, birth_date=birth, sex=Sex.FEMALE,
                          resident_no=no, household_no=HH, relation=relation)
    return ResidentObservedV1(resident=person, snapshot="t", **extra)


MOTHER = row("1055433743", "鈴木　美代子", date(1945, 10, 23), Relation.HEAD, moved_on=date(2024, 4, 1))
DAUGHTER = row("1055433778", "鈴木　香織", date(1976, 5, 26), Relation.CHILD, moved_on=date(2024, 4, 1))
DEATH = row("1055433743", "鈴木　美代子", date(1945, 10, 23), Relation.HEAD, moved_on=DIED,
            status=ResidentStatus.DECEASED, status_on=DIED, move_reason=MoveReason.DIED)
NEW_HEAD = row("1055433778", "鈴木　香織", date(1976, 5, 26), Relation.HEAD, moved_on=DIED,
               move_reason=MoveReason.HOUSEHOLD_CHANGED)


def _case(s: Session, case: str, person: str, field: str) -> None:
    s.add(CaseState(case=case, record=f"src:{case}", person_id=person, household_id=household_id_for_no(HH),
                    feed="jiritsu", field=field, status="open", opened_on=date(2025, 4, 1), closed_on=None,
                    topics=[], members={}, revision=datetime(2025, 4, 1, tzinfo=UTC)))


def _types(events: list[bytes]) -> list[tuple[str, str, str | None]]:
    out = []
    for e in events:
        ev = json.loads(e)
        out.append((ev["type"].split(".")[-2], ev["data"]["kind"], ev["data"].get("close_reason")))
    return out


@pytest.mark.parametrize("order", list(itertools.permutations(["death", "new_head"])))
def test_8050_ends_on_the_death_whatever_order_the_changes_arrive_in(session: Session, order: tuple[str, ...]) -> None:
    """The daughter becoming 世帯主 on the day of the death does not unmake her the mother's child: the
    8050 alert raised before ends on the day of death (member_deceased), in either arrival order, with an
    evaluation after each change."""
    svc = IdentityService(session)
    mother = svc.observe_resident(MOTHER, "full:1").person_id
    daughter = svc.observe_resident(DAUGHTER, "full:2").person_id
    _case(session, "E1", mother, "elderly")
    _case(session, "L1", daughter, "livelihood")
    hid = household_id_for_no(HH)
    assert ("raised", "8050", None) in _types(evaluate_alerts(session, hid, TODAY, None))
    ended = []
    for step in order:
        svc.observe_resident(DEATH if step == "death" else NEW_HEAD, f"ido:{step}")
        ended += [t for t in _types(evaluate_alerts(session, hid, TODAY, None)) if t[0] == "ended"]
    assert ("ended", "8050", "member_deceased") in ended
    state = session.query(AlertState).filter_by(household_id=hid, kind="8050").one()
    assert (state.status, state.closed_on, state.close_reason) == ("closed", DIED, "member_deceased")


def test_the_snapshot_keeps_the_departed_member_until_the_day_they_left(session: Session) -> None:
    """The mother stays in the household's snapshot with member_until = the day of death; the daughter stays
    her child."""
    svc = IdentityService(session)
    mother = svc.observe_resident(MOTHER, "full:1").person_id
    daughter = svc.observe_resident(DAUGHTER, "full:2").person_id
    svc.observe_resident(NEW_HEAD, "ido:2")
    svc.observe_resident(DEATH, "ido:1")
    _case(session, "E1", mother, "elderly")
    snap = household_snapshot(session, household_id_for_no(HH))
    members = {m.person: m for m in snap.members}
    assert (members[mother].member_until, members[mother].left_reason) == (DIED, "deceased")
    assert members[daughter].member_until is None and mother in members[daughter].child_of


def _case_event(day: date, resident_no: str) -> tuple[CloudEvent, CaseV1]:
    subject = PersonRecord(record="jiritsu:J-1", name="鈴木　香織", birth_date=date(1976, 5, 26), sex=Sex.FEMALE,
                           resident_no=resident_no)
    case = CaseV1(feed=Feed.JIRITSU, case="jiritsu:J-1", opened_on=date(2025, 4, 1), status=CaseStatus.IN_PROGRESS,
                  subject=subject, revision=f"{day.isoformat()}T10:00:00+09:00")
    ev = CloudEvent(id=f"j-{day}", source="urn:tsunagu:connector:jiritsu:J", type="jp.tsunagu.case.updated.v1",
                    time=datetime(day.year, day.month, day.day, 10, tzinfo=UTC), sourcerecord="jiritsu:J-1",
                    data=case.model_dump(mode="json"))
    return ev, case


def test_case_events_after_the_person_left_are_attributed_to_no_household(session: Session) -> None:
    """A case event of the daughter dated while she lived in the household names it; once the registry
    says she moved out of the city, a later-dated event names no household (keyed by the person only)."""
    svc = IdentityService(session)
    svc.observe_resident(MOTHER, "full:1")
    daughter = svc.observe_resident(DAUGHTER, "full:2").person_id
    out = row("1055433778", "鈴木　香織", date(1976, 5, 26), Relation.CHILD, moved_on=date(2026, 6, 30),
              status=ResidentStatus.MOVED_OUT, status_on=date(2026, 6, 30), move_reason=MoveReason.MOVED_OUT)
    svc.observe_resident(out, "ido:1")
    hid = household_id_for_no(HH)
    assert resolve_identity(session, *_case_event(date(2026, 6, 29), "1055433778")) == (daughter, hid)
    assert resolve_identity(session, *_case_event(date(2026, 10, 9), "1055433778")) == (daughter, None)


def test_an_ended_alert_is_raised_again_when_its_condition_returns(session: Session) -> None:
    """After the mother's death ended the 8050 alert, the father moving in (転入, 父 of the new 世帯主) with an
    elderly case of his own makes it hold again: it is raised anew from his arrival, and stays open."""
    svc = IdentityService(session)
    mother = svc.observe_resident(MOTHER, "full:1").person_id
    daughter = svc.observe_resident(DAUGHTER, "full:2").person_id
    _case(session, "E1", mother, "elderly")
    _case(session, "L1", daughter, "livelihood")
    hid = household_id_for_no(HH)
    evaluate_alerts(session, hid, TODAY, None)
    svc.observe_resident(NEW_HEAD, "ido:1")
    svc.observe_resident(DEATH, "ido:2")
    assert ("ended", "8050", "member_deceased") in _types(evaluate_alerts(session, hid, TODAY, None))
    assert evaluate_alerts(session, hid, TODAY, None) == []  # nothing new: it stays ended
    arrived = date(2026, 9, 1)
    father = PersonRecord(record="registry:1055433999", name="鈴木　一郎", birth_date=date(1944, 2, 2),
                          sex=Sex.MALE, resident_no="1055433999", household_no=HH, relation=Relation.FATHER)
    dad = svc.observe_resident(ResidentObservedV1(resident=father, snapshot="t", moved_on=arrived,
                                                  move_reason=MoveReason.MOVED_IN), "ido:3").person_id
    s = session
    s.add(CaseState(case="E2", record="src:E2", person_id=dad, household_id=hid, feed="houkatsu", field="elderly",
                    status="open", opened_on=date(2026, 9, 5), closed_on=None, topics=[], members={},
                    revision=datetime(2026, 9, 5, tzinfo=UTC)))
    again = [json.loads(e) for e in evaluate_alerts(session, hid, TODAY, None)]
    raised = [e for e in again if e["data"]["kind"] == "8050"]
    assert [(e["type"], e["time"][:10], e["data"]["status"]) for e in raised] == [
        ("jp.tsunagu.alert.raised.v1", "2026-09-05", "open")]
    state = session.query(AlertState).filter_by(household_id=hid, kind="8050").one()
    assert (state.status, state.closed_on) == ("open", None)
