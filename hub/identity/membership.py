"""Who belonged to which registry household when: membership intervals from resident observations.

Every resident event is kept as a :class:`~hub.identity.tables.ResidentObservation`. Sorted by
(moved_on, event id) — the order of the facts, never the order of arrival — they give each person
intervals ``[member_from, member_until)`` in a household:

* the first observation opens an interval; it starts at its ``moved_on`` only when the row reports an
  arrival (転入, 出生, 職権記載, 外国人住民 記載…), otherwise the person was already there (``None``: always);
* an observation in another household closes the interval at its ``moved_on`` and opens the next
  (転居 keeps the existing registry-move logic: the person's cases follow them);
* a 消除 observation (転出, 死亡, 職権消除) closes the interval at ``status_on`` with that reason;
  a person whose first observation is already 消除 never becomes a member.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.db import get_row
from hub.identity.tables import Resident, ResidentObservation, digest
from schemas.events import ResidentObservedV1
from schemas.registry_codes import MoveReason, ResidentStatus

#: 異動事由 that mean the person arrived in the household on ``moved_on``
ARRIVALS = frozenset({
    MoveReason.MOVED_IN.value, MoveReason.BORN.value, MoveReason.ENTERED_EX_OFFICIO.value,
    MoveReason.BECAME_FOREIGN_RESIDENT.value, MoveReason.NATIONALITY_ACQUIRED.value,
})
#: 住民状態 that end the membership (消除)
REMOVED = frozenset(s.value for s in ResidentStatus if s.is_removed)
#: ``session.info`` key: resident number → every observation of it, read ahead for a batch (kept current by observe)
OBSERVATIONS_BY_NO = "tsunagu_observations_by_no"


@dataclass(frozen=True, slots=True)
class Interval:
    """One stay of a person in a household: from ``member_from`` (None: always) until the day before
    ``member_until`` (None: still there); ``left_reason`` is the 住民状態 that ended it (消除), or
    ``"moved"`` when the person moved to another household of the city."""

    person_id: str
    household_id: str
    relation: str | None
    member_from: date | None
    member_until: date | None
    left_reason: str | None

    def holds_on(self, on: date) -> bool:
        return (self.member_from is None or self.member_from <= on) and (
            self.member_until is None or on < self.member_until)


def _order(o: ResidentObservation) -> tuple[date, str]:
    return (o.moved_on or o.status_on or date.min, o.event_id)


def intervals_from(observations: Iterable[ResidentObservation]) -> list[Interval]:
    """The intervals of ONE person's observations (pure: any order in, the same intervals out)."""
    out: list[Interval] = []
    current: Interval | None = None
    for o in sorted(observations, key=_order):
        if o.status in REMOVED:
            if current is not None:
                out.append(Interval(current.person_id, current.household_id, current.relation,
                                    current.member_from, o.status_on or o.moved_on, o.status))
            current = None
            continue
        if current is None:
            start = o.moved_on if o.move_reason in ARRIVALS or out else None
            current = Interval(o.person_id, o.household_id, o.relation, start, None, None)
        elif current.household_id != o.household_id:
            out.append(Interval(current.person_id, current.household_id, current.relation,
                                current.member_from, o.moved_on, "moved"))
            current = Interval(o.person_id, o.household_id, o.relation, o.moved_on, None, None)
        elif o.relation != current.relation:
            current = Interval(current.person_id, current.household_id, o.relation, current.member_from, None, None)
    if current is not None:
        out.append(current)
    return out


def observations_of(s: Session, person_ids: Iterable[str]) -> dict[str, list[ResidentObservation]]:
    """Every observation of these persons, per person, in IN-list queries of 500."""
    ids = sorted(set(person_ids))
    by_person: dict[str, list[ResidentObservation]] = {}
    for i in range(0, len(ids), 500):
        stmt = select(ResidentObservation).where(ResidentObservation.person_id.in_(ids[i:i + 500]))
        for o in s.scalars(stmt):
            by_person.setdefault(o.person_id, []).append(o)
    return by_person


def intervals_of(s: Session, person_ids: Sequence[str]) -> dict[str, list[Interval]]:
    """The intervals of these persons; a person with no observation is absent from the result."""
    return {pid: intervals_from(obs) for pid, obs in observations_of(s, person_ids).items()}


def persons_seen_in(s: Session, household_id: str) -> set[str]:
    """Persons with any observation in the household (candidates for its intervals)."""
    return persons_seen_in_many(s, [household_id]).get(household_id, set())


def persons_seen_in_many(s: Session, household_ids: Iterable[str]) -> dict[str, set[str]]:
    """Per household, the persons with any observation in it, in IN-list queries of 500."""
    ids = sorted(set(household_ids))
    out: dict[str, set[str]] = {}
    for i in range(0, len(ids), 500):
        stmt = select(ResidentObservation.household_id, ResidentObservation.person_id).where(
            ResidentObservation.household_id.in_(ids[i:i + 500]))
        for hid, pid in s.execute(stmt):
            out.setdefault(hid, set()).add(pid)
    return out


def household_at(s: Session, person_id: str, on: date) -> tuple[bool, str | None]:
    """As-of lookup: (whether the registry knows the person, their household on ``on``).

    ``(False, None)``: no registry observation (keep whatever household the records give);
    ``(True, None)``: a registry person who was in no household that day (left, or not yet arrived).
    """
    spans = intervals_of(s, [person_id]).get(person_id)
    if spans is None:
        return False, None
    for span in spans:
        if span.holds_on(on):
            return True, span.household_id
    return True, None


def latest(s: Session, resident_no: str) -> ResidentObservation | None:
    """The resident's newest observation by (moved_on, event id)."""
    rows = list(s.scalars(select(ResidentObservation).where(ResidentObservation.resident_no == resident_no)))
    return max(rows, key=_order) if rows else None


def observe(s: Session, ev: ResidentObservedV1, person_id: str, household_id: str, event_id: str | None) -> bool:
    """Keep one resident event as an observation; True when it is (now) the resident's newest."""
    no = ev.resident.resident_no
    assert no is not None
    key = event_id or "sha:" + digest(ev.model_dump_json())
    row = get_row(s, ResidentObservation, key)
    held = s.info.get(OBSERVATIONS_BY_NO, {}).get(no)
    if row is None:
        row = ResidentObservation(event_id=key)
        s.add(row)
        if held is not None:
            held.append(row)
    elif held is not None and row not in held:
        held = None  # an observation filed under another resident number: ask the database
    row.resident_no, row.person_id, row.household_id = no, person_id, household_id
    row.relation = ev.resident.relation.value if ev.resident.relation else None
    row.moved_on, row.status_on = ev.moved_on, ev.status_on
    row.status = ev.status.value if ev.status else None
    row.move_reason = ev.move_reason.value if ev.move_reason else None
    if held is not None:
        return bool(max(held, key=_order).event_id == key)
    s.flush()
    newest = latest(s, no)
    return newest is not None and newest.event_id == key


def fill_status(row: Resident, ev: ResidentObservedV1) -> None:
    """The resident's current 住民状態, its day, the 異動事由 and whether the birth date is 不詳."""
    row.status = ev.status.value if ev.status else None
    row.status_on = ev.status_on
    row.move_reason = ev.move_reason.value if ev.move_reason else None
    row.birth_date_unknown = ev.birth_date_unknown


@dataclass(frozen=True, slots=True)
class HouseholdSpans:
    """For one household: ``known``, the persons the registry has observations of, and ``member``, per
    person who belongs in its snapshot, the keyword arguments of their membership interval."""

    known: frozenset[str]
    member: dict[str, dict[str, Any]]


def household_spans(s: Session, household_id: str, current: Iterable[str]) -> HouseholdSpans:
    """Who of the household's current and former registry persons counts in its snapshot, and when.

    A person's stay counts when it is still open, or ended by 消除 (they stay in the snapshot, present
    until they left). A stay ended by a move to another household of the city does not count: the
    person and their cases moved (the existing registry-move logic). A person whose every observation
    is 消除 never was a member.
    """
    persons = set(current) | persons_seen_in(s, household_id)
    return spans_from(household_id, intervals_of(s, sorted(persons)))


def spans_from(household_id: str, spans: dict[str, list[Interval]]) -> HouseholdSpans:
    """``household_spans`` from the intervals of the household's candidate persons (pure)."""
    member: dict[str, dict[str, Any]] = {}
    for pid, stays in spans.items():
        here = [i for i in stays if i.household_id == household_id and i.left_reason != "moved"]
        if here:
            last = here[-1]
            member[pid] = {"member_from": last.member_from, "member_until": last.member_until,
                           "left_reason": last.left_reason}
    return HouseholdSpans(frozenset(spans), member)


def relation_slices(s: Session, household_id: str, person_ids: Iterable[str]) -> list[list[tuple[str, str | None]]]:
    """The household's registry relations (続柄) as they stood on each day one of them changed:
    per such day, ``(person, relation)`` of every member then. Who is whose child is read from every
    slice (a 世帯主変更 after a death does not make the parent's child stop being their child)."""
    ids = sorted(set(person_ids))
    if not ids:
        return []
    stmt = select(ResidentObservation).where(ResidentObservation.household_id == household_id,
                                             ResidentObservation.person_id.in_(ids))
    return slices_from(s.scalars(stmt))


def slices_from(observations: Iterable[ResidentObservation]) -> list[list[tuple[str, str | None]]]:
    """``relation_slices`` from the observations in the household of the persons asked about (pure)."""
    rows = sorted(observations, key=_order)
    out: list[list[tuple[str, str | None]]] = []
    for day in sorted({_order(r)[0] for r in rows}):
        now: dict[str, ResidentObservation] = {}
        for r in rows:
            if _order(r)[0] <= day:
                now[r.person_id] = r
        out.append([(pid, r.relation) for pid, r in sorted(now.items()) if r.status not in REMOVED])
    return out
