"""The identity review queue: list pending pairs, decide link / keep apart (the caller commits)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import (
    select,
    update,
)
from sqlalchemy.orm import Session

from hub.identity.resolver import IdentityService
from hub.identity.tables import (
    Household,
    IdentityReview,
    Person,
    PersonRecordRow,
    Resident,
    household_id_for_no,
    household_id_for_record,
    utcnow,
)

Decision = Literal["link", "keep_apart"]

@dataclass(frozen=True, slots=True)
class ReviewView:
    id: int
    record: str
    candidate_person: str
    score: float
    evidence: dict[str, Any]
    status: str

# --------------------------------------------------------------------------- review API
def list_reviews(session: Session, status: str = "pending") -> list[ReviewView]:
    stmt = select(IdentityReview).where(IdentityReview.status == status).order_by(IdentityReview.id)
    return [ReviewView(r.id, r.record, r.candidate_person, r.score, dict(r.evidence), r.status)
            for r in session.scalars(stmt)]


class ReviewError(ValueError):
    pass


def decide_review(session: Session, review_id: int, decision: Decision, user: str) -> None:
    """``link``: the record joins the candidate person; ``keep_apart``: never proposed or linked again."""
    review = session.get(IdentityReview, review_id)
    if review is None or review.status != "pending":
        raise ReviewError("no pending review with this id")
    user = user.strip()
    if not user:
        raise ReviewError("who decided must be recorded: give a user name")
    svc = IdentityService(session)
    now = utcnow()
    if decision == "link":
        _link(session, review.record, review.candidate_person)
        review.status = "linked"
    elif decision == "keep_apart":
        _keep_apart(svc, review.record, review.candidate_person)
        review.status = "kept_apart"
    else:
        raise ReviewError("decision must be link or keep_apart")
    review.decided_by, review.decided_at = user, now
    svc.audit(review.record, review.candidate_person, decision, user, review_id)
    session.flush()


def _link(session: Session, record: str, target: str) -> None:
    """Re-point a record to ``target``; a person this record alone created (no resident) merges along."""
    if record.startswith("registry:"):
        resident = session.get(Resident, record.split(":", 1)[1])
        if resident is None:
            raise ReviewError("unknown record")
        old = resident.person_id
        resident.person_id = target
        _move_resident_no(session, old, target, resident.resident_no)
        registry_household = household_id_for_no(resident.household_no) if resident.household_no else None
    else:
        row = session.get(PersonRecordRow, record)
        if row is None:
            raise ReviewError("unknown record")
        old = row.person_id
        row.person_id = target
        registry_household = None
    old_person, new_person = session.get(Person, old), session.get(Person, target)
    if new_person is None:
        raise ReviewError("unknown candidate person")
    if registry_household is not None and session.get(Household, registry_household) is not None:
        new_person.household_id = registry_household  # a resident's household is the registry's (alerts.md)
    if old_person is not None and old != target and old_person.created_by == record and not old_person.resident_no:
        session.execute(update(PersonRecordRow).where(PersonRecordRow.person_id == old).values(person_id=target))
        old_person.merged_into = target
    session.execute(update(PersonRecordRow).where(PersonRecordRow.person_id == target)
                    .values(household_id=new_person.household_id))


def _keep_apart(svc: IdentityService, record: str, person_id: str) -> None:
    """A record attached to the person it is kept apart from (re-attached by a resident number
    while the review was pending) leaves that person for a hub person of its own."""
    row = svc.s.get(PersonRecordRow, record)
    if row is None or row.person_id != person_id:
        return
    own = svc.s.scalar(select(Person).where(Person.created_by == record, Person.id != person_id,
                                            Person.merged_into.is_(None), Person.resident_no.is_(None))
                       .order_by(Person.created_at, Person.id).limit(1))
    if own is not None:  # back to the person the record itself made
        if own.household_id is None:
            own.household_id = household_id_for_record(record)
            svc.ensure_named_household(own.household_id, record)
        row.person_id, row.household_id = own.id, own.household_id
    else:
        household = household_id_for_record(record)
        row.person_id = svc.new_person(record, household_id=household)
        row.household_id = household
    svc.audit(record, person_id, "detach", "auto:keep_apart")
    svc.s.flush()


def _move_resident_no(session: Session, old: str, target: str, resident_no: str) -> None:
    old_person, new_person = session.get(Person, old), session.get(Person, target)
    if new_person is None or (new_person.resident_no and new_person.resident_no != resident_no):
        raise ReviewError("the candidate already has another resident number")
    if old_person is not None and old_person.resident_no == resident_no:
        old_person.resident_no = None
        old_person.merged_into = target
        session.flush()
    new_person.resident_no = resident_no
