"""Re-attribution after a reviewer's identity decision (issue "Who is who", item 4).

:func:`hub.identity.review.decide_review` re-points ``person_records`` (and a registry resident) to the
person the reviewer chose. The hub's own tables still carry the person and household each event
was resolved to when it arrived, so in the SAME transaction this module:

* moves the cases (:class:`hub.pipeline.tables.CaseState`) and kept events (:class:`hub.pipeline.tables.CaseEvent`,
  including the ``person`` / ``household`` attributes of the stored CloudEvent) of every record
  whose person or household changed to the record's current person and household;
* re-evaluates the alerts of every household affected, the old ones and the new ones, with
  :func:`hub.pipeline.adapters.evaluate_alerts`, and puts the resulting alert events into the hub outbox
  (:class:`hub.pipeline.tables.HubOutbox`) for the alerts topic of the given prefix; the hub service relays
  the outbox at start-up and after every batch;
* asks the consent gate again about moved events that were held (never published to the team):
  a consent filed under the person they now belong to may release them, exactly as a late
  consent does in :meth:`hub.pipeline.stages.HubCore._consent`.

Decisions are rows (``identity_reviews`` / ``identity_decisions``), so they survive restarts;
who decided and when are recorded on both (an empty user is refused).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from hub.db import prefetch
from hub.identity.review import Decision, ReviewError, decide_review
from hub.identity.tables import IdentityDecision, IdentityReview, Person, PersonRecordRow, Resident
from hub.pipeline import adapters
from hub.pipeline.tables import CaseEvent, CaseState, HubOutbox
from hub.topics import Topics
from schemas.envelope import CloudEvent

#: the advisory lock the intake stage holds while it resolves identities (hub/pipeline.py)
IDENTITY_LOCK = 7200501


@dataclass(frozen=True, slots=True)
class Reattribution:
    """What one decision changed (counts and keys only: no personal data)."""

    review_id: int
    decision: Decision
    record: str
    candidate_person: str
    #: the record's hub person after the decision
    person_id: str | None
    decided_by: str
    decided_at: datetime
    #: record keys whose cases or events moved
    records: tuple[str, ...]
    cases: int
    events: int
    #: households whose alerts were re-evaluated (old and new)
    households: tuple[str, ...]
    alert_events: int
    #: held events the consent gate now lets through to the team
    released: int

    def to_json(self) -> dict[str, Any]:
        return {
            "review": self.review_id,
            "decision": self.decision,
            "record": self.record,
            "candidate_person": self.candidate_person,
            "person": self.person_id,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.isoformat(),
            "records_moved": list(self.records),
            "cases_moved": self.cases,
            "events_moved": self.events,
            "households": list(self.households),
            "alert_events": self.alert_events,
            "released_to_team": self.released,
        }


@dataclass(frozen=True, slots=True)
class Moved:
    records: tuple[str, ...]
    cases: int
    events: int
    households: tuple[str, ...]
    alert_events: int
    released: int


def decide(
    session: Session,
    review_id: int,
    decision: Decision,
    user: str,
    *,
    prefix: str,
    today: date | None = None,
    alert_settings: Any = None,
) -> Reattribution:
    """Decide one review and re-attribute what it moved, in the caller's transaction (the caller commits)."""
    user = user.strip()
    if not user:
        raise ReviewError("who decided must be recorded: give a user name")
    if session.get_bind().dialect.name == "postgresql":
        # The intake stage resolves identities under this lock; a decision re-points the same rows.
        session.execute(text(f"SELECT pg_advisory_xact_lock({IDENTITY_LOCK})"))
    review = session.scalar(select(IdentityReview).where(IdentityReview.id == review_id)
                            .with_for_update().execution_options(populate_existing=True))
    if review is None or review.status != "pending":
        raise ReviewError("no pending review with this id")
    record, candidate = review.record, review.candidate_person
    involved = {candidate} | ({p} if (p := _person_of(session, record)) else set())
    before = _records_of(session, involved)
    households = _households_of(session, involved)

    decide_review(session, review_id, decision, user)
    session.flush()

    now_person = _person_of(session, record)
    involved |= {now_person} if now_person else set()
    after = _records_of(session, involved)
    households |= _households_of(session, involved)
    moved = reattribute(session, before | after, households=households, prefix=prefix, today=today,
                        alert_settings=alert_settings)
    audit = session.scalar(select(IdentityDecision).where(IdentityDecision.review_id == review_id)
                           .order_by(IdentityDecision.id.desc()).limit(1))
    assert audit is not None  # decide_review always writes one
    return Reattribution(
        review_id=review_id, decision=decision, record=record, candidate_person=candidate, person_id=now_person,
        decided_by=audit.decided_by, decided_at=audit.decided_at, records=moved.records, cases=moved.cases,
        events=moved.events, households=moved.households, alert_events=moved.alert_events, released=moved.released,
    )


def reattribute(
    session: Session,
    records: Iterable[str],
    *,
    households: Iterable[str | None] = (),
    prefix: str,
    today: date | None = None,
    alert_settings: Any = None,
) -> Moved:
    """Bring the cases and events of ``records`` to their records' current person and household,
    then re-evaluate the alerts of every household involved (``households``, and the old and new
    household of everything that moved). Idempotent: a second call moves nothing."""
    topics = Topics(prefix)
    affected: set[str] = {h for h in households if h}
    moved_records: set[str] = set()
    n_cases = n_events = 0
    held: list[CaseEvent] = []
    wanted = sorted(set(records))
    rows = prefetch(session, PersonRecordRow, wanted)
    prefetch(session, Person, [r.person_id for r in rows])
    cases_of: dict[str, list[CaseState]] = {}
    events_of: dict[str, list[CaseEvent]] = {}
    for i in range(0, len(wanted), 500):
        chunk = wanted[i:i + 500]
        for case in session.scalars(select(CaseState).where(CaseState.record.in_(chunk))):
            cases_of.setdefault(case.record, []).append(case)
        for kept in session.scalars(select(CaseEvent).where(CaseEvent.record.in_(chunk))):
            events_of.setdefault(kept.record, []).append(kept)
    for record in wanted:
        target = current_attribution(session, record)
        if target is None:
            continue
        person, household = target
        for case in cases_of.get(record, []):
            if (case.person_id, case.household_id) != (person, household):
                affected |= {h for h in (case.household_id, household) if h}
                case.person_id, case.household_id = person, household
                adapters.has_cases(session, person)
                moved_records.add(record)
                n_cases += 1
        for row in events_of.get(record, []):
            if (row.person_id, row.household_id) != (person, household):
                affected |= {h for h in (row.household_id, household) if h}
                row.person_id, row.household_id = person, household
                ev = CloudEvent.from_json_bytes(row.payload)
                row.payload = ev.model_copy(update={"person": person, "household": household}).to_json_bytes()
                moved_records.add(record)
                n_events += 1
                if not row.team_published:
                    held.append(row)
    session.flush()
    released = _release_held(session, held, topics)
    on = today or datetime.now(adapters.JST).date()
    n_alerts = 0
    for household, value in adapters.evaluate_alerts_many(session, sorted(affected), on, alert_settings):
        _emit(session, topics.alerts, household, value)
        n_alerts += 1
    session.flush()
    return Moved(tuple(sorted(moved_records)), n_cases, n_events, tuple(sorted(affected)), n_alerts, released)


def current_attribution(session: Session, record: str) -> tuple[str, str | None] | None:
    """(person, household) a source record belongs to now; None for a record the hub does not know."""
    row = session.get(PersonRecordRow, record)
    if row is None:
        return None
    person = _final(session, row.person_id)
    p = session.get(Person, person)
    return person, (p.household_id if p is not None and p.household_id else row.household_id)


# --------------------------------------------------------------------------- helpers
def _final(session: Session, person_id: str) -> str:
    """Follow ``merged_into`` (a person a reviewer linked away) to the person that remains."""
    seen = {person_id}
    p = session.get(Person, person_id)
    while p is not None and p.merged_into and p.merged_into not in seen:
        seen.add(p.merged_into)
        person_id = p.merged_into
        p = session.get(Person, person_id)
    return person_id


def _person_of(session: Session, record: str) -> str | None:
    if record.startswith("registry:"):
        resident = session.get(Resident, record.split(":", 1)[1])
        return resident.person_id if resident is not None else None
    row = session.get(PersonRecordRow, record)
    return row.person_id if row is not None else None


def _records_of(session: Session, persons: set[str]) -> set[str]:
    if not persons:
        return set()
    return set(session.scalars(select(PersonRecordRow.record).where(PersonRecordRow.person_id.in_(sorted(persons)))))


def _households_of(session: Session, persons: set[str]) -> set[str | None]:
    if not persons:
        return set()
    return set(session.scalars(select(Person.household_id).where(Person.id.in_(sorted(persons)))))


def _emit(session: Session, topic: str, key: str | None, value: bytes) -> None:
    session.add(HubOutbox(topic=topic, key=key, value=value, created_at=datetime.now(UTC)))


def _release_held(session: Session, rows: list[CaseEvent], topics: Topics) -> int:
    """Held events now under another person: ask the consent gate again (as a late consent does)."""
    released = 0
    ordered = sorted(rows, key=lambda r: (adapters.aware(r.time), r.event_id))
    events = [CloudEvent.from_json_bytes(row.payload) for row in ordered]
    adapters.read_ahead_gate(session, events)  # one set read for every decision below
    audited: list[tuple[CloudEvent, Any]] = []
    for row, ev in zip(ordered, events, strict=True):
        if ev.person is None:
            continue
        decision = adapters.decide_for(session, ev)
        if decision.permit and decision.route == "team":
            audited.append((ev, decision))
            _emit(session, topics.team, ev.household or ev.person, adapters.team_event(ev))
            row.team_published = True
            released += 1
    adapters.forget_gate(session)
    if audited:
        adapters.audit_many(session, audited)  # in order, one append to the chain
    return released
