"""Identity look-ups the consent service needs: a resident's hub persons, merges and subject keys."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from hub.http.consent.models import Subject
from hub.identity.tables import Person, PersonRecordRow, Resident
from hub.pipeline.adapters import subject_keys


# --------------------------------------------------------------------------- identity look-ups
def persons_of_resident(s: Session, resident_no: str) -> set[str]:
    """Every hub person that is (or was merged with) the resident with this 宛名番号."""

    found: set[str] = set(s.scalars(select(Person.id).where(Person.resident_no == resident_no)))
    found |= set(s.scalars(select(Resident.person_id).where(Resident.resident_no == resident_no)))
    found |= set(s.scalars(select(PersonRecordRow.person_id).where(or_(
        PersonRecordRow.resident_no == resident_no, PersonRecordRow.record == f"registry:{resident_no}"))))
    return merged_closure(s, found)


def merged_closure(s: Session, persons: Collection[str]) -> set[str]:
    """The persons plus those merged into them and those they were merged into (a reviewer's link)."""

    out = set(persons)
    frontier = set(persons)
    while frontier:
        rows = s.execute(select(Person.id, Person.merged_into).where(
            or_(Person.id.in_(frontier), Person.merged_into.in_(frontier)))).all()
        new = {x for row in rows for x in row if x is not None} - out
        out |= new
        frontier = new
    return out


def subject_keys_of_resident(s: Session, resident_no: str) -> tuple[set[str], set[str]]:
    """The resident numbers and record keys under which this resident's consents may be filed."""

    resident_nos, records = {resident_no}, {f"registry:{resident_no}"}
    for person in persons_of_resident(s, resident_no):
        nos, recs = subject_keys(s, person)
        resident_nos |= nos
        records |= recs
    return resident_nos, records


def birth_date_of(s: Session, subject: Subject) -> date | None:

    if subject.resident_no:
        r = s.get(Resident, subject.resident_no)
        if r is not None and r.birth_date is not None:
            return r.birth_date
    if subject.record:
        row = s.get(PersonRecordRow, subject.record)
        if row is not None:
            return row.birth_date
    return None
