"""Read one household's facts from the hub database (a handful of queries) for :mod:`hub.workspace.policy`.

Members come from the hub's persons; names, kana, birth dates and sex from the registry when the
person is a resident, else from the newest case event that names them as its subject. Consents are
read once for every resident number and record key of the members and filed per person.
Nothing here decides what may be shown: that is the policy's job.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from consent.model import ConsentVersion, EmergencyOverride, fields_tuple
from consent.store import ConsentRepository, EmergencyOverrideRow
from hub.identity.tables import Person, PersonRecordRow, Resident
from hub.pipeline.tables import AlertState, CaseEvent, CaseState
from hub.workspace.auth import Principal
from hub.workspace.policy import (
    AlertFact,
    CaseFactIn,
    Change,
    EventFact,
    HouseholdFacts,
    HouseholdView,
    MemberFact,
    Viewer,
    view_household,
)
from schemas.codes import Field
from schemas.envelope import CloudEvent
from schemas.events import CaseV1, ReferralRequestedV1

_CHANGE: dict[str, Change] = {
    "jp.tsunagu.case.opened.v1": "opened",
    "jp.tsunagu.case.updated.v1": "updated",
    "jp.tsunagu.case.closed.v1": "closed",
    "jp.tsunagu.referral.requested.v1": "referral",
}


def household_exists(session: Session, household: str) -> bool:
    """Whether the hub knows this household at all (persons, cases or alerts name it)."""
    for stmt in (select(Person.id).where(Person.household_id == household).limit(1),
                 select(CaseState.case).where(CaseState.household_id == household).limit(1),
                 select(AlertState.alert_id).where(AlertState.household_id == household).limit(1)):
        if session.execute(stmt).first() is not None:
            return True
    return False


def _field(value: str | None) -> Field | None:
    try:
        return Field(value) if value else None
    except ValueError:
        return None


def _event_fact(row: CaseEvent, person: str | None) -> tuple[EventFact | None, dict[str, Any] | None]:
    """The event as the policy reads it, plus its subject (name, kana, birth date, sex) when it names one."""
    change = _CHANGE.get(row.type)
    if change is None:
        return None, None
    try:
        ev = CloudEvent.from_json_bytes(row.payload)
        payload: CaseV1 | ReferralRequestedV1 = (
            ReferralRequestedV1.model_validate(ev.data) if change == "referral" else CaseV1.model_validate(ev.data))
    except (ValidationError, ValueError):
        return None, None  # an event the hub accepted always parses; fail closed if not
    subject = payload.subject
    who = {"name": subject.name, "kana": subject.kana, "birth_date": subject.birth_date, "sex": subject.sex.value}
    field = _field(row.field)
    if isinstance(payload, ReferralRequestedV1):
        return EventFact(event_id=row.event_id, source=row.source, type=row.type, time=row.time, record=row.record,
                         person=person, field=field, change="referral", case=payload.case,
                         referral_to=payload.to.value, opened_on=payload.requested_on), who
    return EventFact(
        event_id=row.event_id, source=row.source, type=row.type, time=row.time, record=row.record, person=person,
        field=field, change=change, case=payload.case, status=payload.status.value, opened_on=payload.opened_on,
        closed_on=payload.closed_on, summary=payload.sensitive.summary, notes=tuple(payload.sensitive.notes),
        disability_types=tuple(d.value for d in payload.sensitive.disability_types),
        topics=tuple(t.value for t in payload.topics),
        referral_to=payload.referral_to.value if payload.referral_to else None,
    ), who


def load_household(session: Session, household: str) -> HouseholdFacts:
    """Members, cases, case events, alerts, consents, designations and emergencies of one household."""
    persons = session.scalars(
        select(Person).where(Person.household_id == household, Person.merged_into.is_(None))).all()
    ids = {p.id for p in persons}
    residents = {r.person_id: r for r in session.scalars(select(Resident).where(Resident.person_id.in_(ids)))} \
        if ids else {}
    record_rows = session.execute(
        select(PersonRecordRow.record, PersonRecordRow.person_id, PersonRecordRow.resident_no,
               PersonRecordRow.birth_date, PersonRecordRow.sex)
        .where(PersonRecordRow.person_id.in_(ids))).all() if ids else []
    record_person: dict[str, str] = {}
    resident_nos: dict[str, set[str]] = defaultdict(set)
    records: dict[str, set[str]] = defaultdict(set)
    fallback_birth: dict[str, date] = {}
    for rec, pid, no, birth, _sex in record_rows:
        record_person[rec] = pid
        records[pid].add(rec)
        if no:
            resident_nos[pid].add(no)
        if birth is not None:
            fallback_birth.setdefault(pid, birth)
    for p in persons:
        if p.resident_no:
            resident_nos[p.id].add(p.resident_no)
            records[p.id].add(f"registry:{p.resident_no}")

    case_rows = session.scalars(select(CaseState).where(CaseState.household_id == household)).all()
    cases = tuple(
        CaseFactIn(case=c.case, record=c.record, person=c.person_id, field=Field(c.field), status=c.status,
                   opened_on=c.opened_on, closed_on=c.closed_on)
        for c in case_rows if _field(c.field) is not None)

    events: list[EventFact] = []
    subjects: dict[str, dict[str, Any]] = {}
    for row in session.scalars(select(CaseEvent).where(CaseEvent.household_id == household)
                               .order_by(CaseEvent.time, CaseEvent.event_id)):
        person = record_person.get(row.record, row.person_id)
        fact, who = _event_fact(row, person)
        if fact is None:
            continue
        events.append(fact)
        if person is not None and who is not None:
            subjects[person] = who  # time order: the newest naming wins

    members: list[MemberFact] = []
    for p in sorted(persons, key=lambda p: p.id):
        r = residents.get(p.id)
        who = subjects.get(p.id, {})
        members.append(MemberFact(
            person=p.id,
            name=r.name if r is not None else who.get("name"),
            kana=who.get("kana"),
            birth_date=(r.birth_date if r is not None and r.birth_date else who.get("birth_date"))
            or fallback_birth.get(p.id),
            sex=(r.sex if r is not None and r.sex else who.get("sex")),
            relation=r.relation if r is not None else None,
        ))

    repo = ConsentRepository(session)
    all_nos = set().union(*resident_nos.values()) if resident_nos else set()
    all_records = set().union(*records.values()) if records else set()
    versions = repo.versions_for(all_nos, all_records)
    consents: dict[str, list[ConsentVersion]] = defaultdict(list)
    for v in versions:
        for pid in ids:
            if (v.subject_resident_no and v.subject_resident_no in resident_nos.get(pid, set())) or (
                    v.subject_record and v.subject_record in records.get(pid, set())):
                consents[pid].append(v)

    emergencies = tuple(
        EmergencyOverride(reason=r.reason, user=r.user, at=r.at, person=r.person, fields=fields_tuple(r.fields))
        for r in session.scalars(select(EmergencyOverrideRow).where(EmergencyOverrideRow.person.in_(ids))
                                 .order_by(EmergencyOverrideRow.id))) if ids else ()
    alerts = tuple(
        AlertFact(alert_id=a.alert_id, kind=a.kind, fields=tuple(Field(f) for f in a.fields),
                  records=tuple(a.records), raised_at=a.raised_at, updated_at=a.updated_at)
        for a in session.scalars(select(AlertState).where(AlertState.household_id == household)))
    return HouseholdFacts(
        household=household, members=tuple(members), cases=cases, events=tuple(events),
        consents={pid: tuple(vs) for pid, vs in consents.items()},
        designations=tuple(repo.designations_for(household)), emergencies=emergencies, alerts=alerts)


def viewer_of(principal: Principal) -> Viewer:
    """The policy's viewer for a logged-in user (an unknown agency code counts as no agency field: no access)."""
    agency: Field | None = None
    if principal.agency:
        try:
            agency = Field(principal.agency)
        except ValueError:
            return Viewer(principal.username, "none", None)
    return Viewer(principal.username, principal.role, agency)


def household_view(session: Session, principal: Principal, household: str, now: datetime) -> HouseholdView:
    """Load the household and ask the policy what this user may see of it at ``now``."""
    return view_household(viewer_of(principal), load_household(session, household), now)
