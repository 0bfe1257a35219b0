"""Who is who: link person records from every feed to one hub person, fail-safe.

A false merge (one person's case shown to another person's team) is worse than a missed
link, so the engine only links automatically on strong, unambiguous, consistent evidence:

* **resident_no** (宛名番号) decides when present and consistent with the resident (birth date,
  sex and reading must not contradict). An inconsistent one is not authoritative: the record is
  scored normally, never auto-linked to that resident, and goes to review.
* Otherwise candidates are *found* by indexed blocking on (birth date, reading), (birth date,
  variant-folded name), (household, birth date) and (address, birth date), in the registry
  (``residents``) and among records already seen (``person_records``), and *scored* with
  explicit weights (see :data:`WEIGHTS`). Folded kanji are for finding only: a folded match
  scores less than the exact name and never links without other evidence.
* ``score >= LINK`` with equal birth dates, no contradiction and a clear margin over the next
  candidate links automatically; ``REVIEW <= score`` goes to the review queue while the record
  gets a separate hub person (fail safe); anything lower is a new hub person.

Two records with different resident numbers are never linked automatically (unless the record's
number names someone born on another day and the other candidate agrees on everything, see
:func:`hub.identity.scoring.overrules_number`), and a pair a reviewer kept apart is never proposed
or linked again. A resident number on a record whose name
differs is trusted only when the reading confirms it (a homophone slip), never for another name
with no reading (a twin's number typed by mistake). A person made for a record that waits in
review is a *shadow* of its candidate, not a rival: it does not hold back the next clear link.

Tables are in :mod:`hub.identity.tables`, the pure rules in :mod:`hub.identity.scoring`, the review queue in
:mod:`hub.identity.review`; evidence stored for reviews names features, never names.
"""


from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from hub.db import get_row, prefetch
from hub.identity.blocking import blocking_of, read_blocking
from hub.identity.membership import OBSERVATIONS_BY_NO, fill_status, observe
from hub.identity.names import blocking_statements as name_blocking_statements
from hub.identity.names import names_by_resident, store_names, unknown_birth_statements, variants_of, with_names
from hub.identity.scoring import (
    BLOCK_LIMIT,
    LINK,
    MARGIN,
    REVIEW,
    Features,
    compare,
    compare_rows,
    contradicts,
    features_of,
    features_of_resident,
    may_link,
    number_fits,
    number_misnames,
    overrules_number,
    points,
)
from hub.identity.tables import (
    Household,
    IdentityDecision,
    IdentityReview,
    Person,
    PersonRecordRow,
    Resident,
    ResidentName,
    ResidentObservation,
    digest,
    household_id_for_no,
    household_id_for_record,
    registry_record,
    utcnow,
)
from schemas.events import CaseV1, PersonRecord, ResidentObservedV1
from schemas.name_evidence import slip_birth_dates

Outcome = Literal["resident_no", "matched", "review", "new", "known"]
#: ``session.info`` key: the persons made in this transaction that have no registry observation (yet)
UNOBSERVED = "tsunagu_unobserved_persons"
#: ``session.info`` key: resident number → the id of the person claiming it (None: nobody), for the batch's numbers
CLAIMS = "tsunagu_claims"
#: ``session.info`` key: the batch's resident numbers known to have (True) or not have (False) other names stored
HAS_NAMES = "tsunagu_has_names"

# --------------------------------------------------------------------------- results
@dataclass(frozen=True, slots=True)
class Resolution:
    person_id: str
    household_id: str | None
    outcome: Outcome
    score: float | None = None


@dataclass(slots=True)
class Candidate:
    person_id: str
    score: float
    evidence: dict[str, str]
    birth_agrees: bool
    contradiction: bool
    may_autolink: bool = True
    rows: int = 0

@dataclass(slots=True)
class _Query:
    """What to look for: features, the hinted household and what must be left out."""

    features: Features
    record: str
    household_id: str | None = None
    household_no: str | None = None
    kept_apart: set[str] = field(default_factory=set)
    no_autolink: set[str] = field(default_factory=set)
    #: the record's resident number names someone born on another day (scoring.number_misnames)
    number_misnames: bool = False

# --------------------------------------------------------------------------- the service
class IdentityService:
    """Resolves person records to hub persons within one SQLAlchemy session (the caller commits)."""

    def __init__(self, session: Session, *, address_prefixes: Sequence[str] = ()) -> None:
        self.s = session
        self.address_prefixes = tuple(address_prefixes)

    # ---------------------------------------------------------------- batch read-ahead
    def read_ahead(self, records: Iterable[str], household_nos: Iterable[str] = (),
                   features: Sequence[Features] = (), observations: Iterable[str] = (),
                   residents: Sequence[Features] = ()) -> None:
        """Before resolving a batch: load the records' rows, the persons and households their keys would
        name, in a few IN-list queries; what does not exist is then known without a query per record.
        With the records' ``features``, every candidate look-up of theirs is read too (:mod:`hub.identity.blocking`),
        and so are the residents, claims, other names and observations (by ``observations``' event ids) of
        their resident numbers; ``residents`` are the features of the batch's registry residents."""
        records = sorted(set(records))
        rows = prefetch(self.s, PersonRecordRow, records)
        prefetch(self.s, Person, [*("p-" + digest(r) for r in records), *(r.person_id for r in rows)])
        prefetch(self.s, Household, [*(household_id_for_record(r) for r in records),
                                     *(household_id_for_no(n) for n in household_nos if n)])
        kept: dict[str, set[str]] = {}
        for i in range(0, len(records), 500):
            for record, pid in self.s.execute(select(IdentityDecision.record, IdentityDecision.person_id).where(
                    IdentityDecision.record.in_(records[i:i + 500]), IdentityDecision.decision == "keep_apart")):
                kept.setdefault(record, set()).add(pid)
        # keep-apart decisions are made by reviewers only, never while a batch is resolved
        self.s.info["tsunagu_kept_apart"] = (set(records), kept)
        nos = sorted({f.resident_no for f in (*features, *residents) if f.resident_no})
        prefetch(self.s, Resident, nos)
        prefetch(self.s, ResidentObservation, observations)
        claims: dict[str, str | None] = dict.fromkeys(nos)
        has_names = dict.fromkeys(nos, False)
        by_no: dict[str, list[ResidentObservation]] = {no: [] for no in nos}
        for i in range(0, len(nos), 500):
            part = nos[i:i + 500]
            for p in self.s.scalars(select(Person).where(Person.resident_no.in_(part))):
                claims[p.resident_no or ""] = p.id
            for no in self.s.scalars(select(ResidentName.resident_no).where(ResidentName.resident_no.in_(part))):
                has_names[no] = True
            for o in self.s.scalars(select(ResidentObservation).where(ResidentObservation.resident_no.in_(part))):
                by_no[o.resident_no].append(o)
        self.s.info[CLAIMS], self.s.info[HAS_NAMES], self.s.info[OBSERVATIONS_BY_NO] = claims, has_names, by_no
        read_blocking(self.s, features, persons=[r.person_id for r in rows], sources_only=residents)

    # ---------------------------------------------------------------- registry
    def observe_resident(self, ev: ResidentObservedV1, event_id: str | None = None) -> Resolution:
        """Record the observation (history); only the newest one (by moved_on, event id) updates
        the resident's current row and household, so arrival order does not matter."""
        r = ev.resident
        no, household_no = r.resident_no, r.household_no
        assert no is not None and household_no is not None  # ResidentObservedV1 guarantees both
        f = features_for(self.s, ev, self.address_prefixes)
        household = self._ensure_household(household_no, origin="registry")
        row = get_row(self.s, Resident, no)
        index = blocking_of(self.s)
        if row is not None:
            self.s.info.get(UNOBSERVED, set()).discard(row.person_id)
            if index is not None:
                index.observed.add(row.person_id)
            if observe(self.s, ev, row.person_id, household, event_id):
                self._fill_resident(row, r, f, ev.moved_on, ev)
                self._move_person(row.person_id, household)
            return Resolution(row.person_id, household, "known")
        person_id, outcome, score = self._person_for_new_resident(r.record, no, f)
        self._move_person(person_id, household)
        self.s.info.get(UNOBSERVED, set()).discard(person_id)
        if index is not None:
            index.observed.add(person_id)
        observe(self.s, ev, person_id, household, event_id)
        row = Resident(resident_no=no, person_id=person_id)
        self._fill_resident(row, r, f, ev.moved_on, ev)
        self.s.add(row)
        return Resolution(person_id, household, outcome, score)

    def _fill_resident(self, row: Resident, r: PersonRecord, f: Features, moved_on: date | None,
                       ev: ResidentObservedV1 | None = None) -> None:
        index = blocking_of(self.s)
        if index is not None:
            index.touch(row.person_id)
        if ev is not None:
            fill_status(row, ev)
            no = ev.resident.resident_no or ""
            has_names = self.s.info.get(HAS_NAMES, {})
            # nothing to replace for a resident known to have no other names stored
            store_names(self.s, ev, row.person_id, f.birth_date, replace=has_names.get(no, True))
            if no in has_names:
                has_names[no] = True  # (again) unknown: the next event of this resident replaces what this one adds
            if index is not None:
                index.replace_names(ev.resident.resident_no or "", row.person_id, f.birth_date,
                                    (keys for _, keys in variants_of(ev)))
        row.household_no = r.household_no or ""
        row.relation = r.relation.value if r.relation else None
        row.name = r.name
        row.name_key, row.folded_key, row.kana_key = f.name_key, f.folded_key, f.kana_key
        row.birth_date, row.sex, row.address_key, row.phone_key = f.birth_date, f.sex, f.address_key, f.phone_key
        _store_parts(row, f)
        row.former_family_key, row.former_family_kana = f.former_family_key, f.former_family_kana
        row.moved_on = moved_on
        if index is not None:
            index.note_resident(row)

    def _person_for_new_resident(self, record: str, no: str, f: Features) -> tuple[str, Outcome, float | None]:
        """A resident seen for the first time: a hub person that claimed this resident_no, or one
        made earlier from source records that matches unambiguously, or a new one."""
        claimed = self._claimant(no)
        if claimed is not None:
            if not self._number_misfits(f, claimed.id, exclude=record):
                return claimed.id, "resident_no", None
            claimed.resident_no = None  # the claim was wrong: release it, review the pair
            self._claimed(no, None)
            self.s.flush()
            self._propose(record, claimed.id, 0.0, {"resident_no": "conflict"})
        q = _Query(f, record, kept_apart=self._kept_apart(record))
        cands = [c for c in self._candidates(q, residents=False) if self._unclaimed(c.person_id)]
        best, kind = self._choose(self._without_shadows(cands))
        if best is not None and kind == "matched":
            person = get_row(self.s, Person, best.person_id)
            assert person is not None
            person.resident_no = no
            self._claimed(no, person.id)
            return best.person_id, "matched", best.score
        person_id = self.new_person(record, resident_no=no)
        if best is not None and kind == "review":
            self._propose_all(record, cands)
            return person_id, "review", best.score
        return person_id, "new", best.score if best else None

    def _claimant(self, no: str) -> Person | None:
        """The person claiming this resident number (read ahead for the batch's numbers)."""
        claims = self.s.info.get(CLAIMS)
        if claims is not None and no in claims:
            pid = claims[no]
            return get_row(self.s, Person, pid) if pid else None
        return self.s.scalar(select(Person).where(Person.resident_no == no))

    def _claimed(self, no: str, person_id: str | None) -> None:
        claims = self.s.info.get(CLAIMS)
        if claims is not None and no in claims:
            claims[no] = person_id

    def _unclaimed(self, person_id: str) -> bool:
        person = get_row(self.s, Person, person_id)
        return person is not None and person.resident_no is None

    # ---------------------------------------------------------------- sources
    def resolve(
        self,
        person: PersonRecord,
        *,
        feed: str,
        source_household_no: str | None = None,
        household_hint: str | None = None,
    ) -> Resolution:
        """The hub person (and household) of one source person record."""
        f = features_for(self.s, person, self.address_prefixes)
        hint = household_hint or (self._ensure_household(source_household_no, "source") if source_household_no
                                  else None)
        existing = get_row(self.s, PersonRecordRow, person.record)
        if existing is not None:
            return self._known(existing, person, f, feed, hint)
        q = _Query(f, person.record, household_id=hint, household_no=self._household_no(hint),
                   kept_apart=self._kept_apart(person.record))
        by_no = self._by_resident_no(q)
        if by_no is not None:
            return self._attach(person.record, feed, f, by_no, "resident_no", None, hint)
        return self._match(q, feed, hint)

    def _match(self, q: _Query, feed: str, hint: str | None) -> Resolution:
        cands = self._candidates(q)
        best, kind = self._choose(self._without_shadows(cands))
        if best is not None and kind == "matched":
            return self._attach(q.record, feed, q.features, best.person_id, "matched", best.score, hint)
        claim = None if q.no_autolink else self._claimable(q.features.resident_no)
        person_id = self.new_person(q.record, resident_no=claim,
                                     household_id=hint or household_id_for_record(q.record))
        if best is not None and kind == "review":
            self._propose_all(q.record, cands)
            return self._attach(q.record, feed, q.features, person_id, "review", best.score, hint)
        return self._attach(q.record, feed, q.features, person_id, "new", best.score if best else None, hint)

    def resolve_case(self, case: CaseV1) -> dict[str, Resolution]:
        """The subject, then houkatsu 同居家族 (hint: the subject's household), then kodomo related persons."""
        feed = case.feed.value
        out: dict[str, Resolution] = {}
        subject = self.resolve(case.subject, feed=feed, source_household_no=case.source_household_no)
        out[case.subject.record] = subject
        for member in case.household_members:
            out[member.person.record] = self.resolve(member.person, feed=feed, household_hint=subject.household_id)
        for related in case.related_persons:
            out[related.person.record] = self.resolve(related.person, feed=feed,
                                                      source_household_no=case.source_household_no)
        return out

    # ---------------------------------------------------------------- resident_no
    def _by_resident_no(self, q: _Query) -> str | None:
        """The person a consistent resident_no names; an inconsistent one only blocks auto-links."""
        no = q.features.resident_no
        if not no:
            return None
        resident = get_row(self.s, Resident, no)
        if resident is not None:
            row_f = with_names(features_of_row(resident), names_by_resident(self.s, [no]).get(no))
            number_ev = compare(q.features, row_f, same_household=bool(q.household_no)
                                and q.household_no == resident.household_no)
            if number_fits(number_ev, q.features, row_f):
                return resident.person_id if resident.person_id not in q.kept_apart else None
            q.no_autolink.add(resident.person_id)
            q.number_misnames = number_misnames(number_ev)
            return None
        claimant = self._claimant(no)
        claimed = claimant.id if claimant is not None else None
        if claimed is None or claimed in q.kept_apart:
            return None
        if self._number_misfits(q.features, claimed, exclude=q.record):
            q.no_autolink.add(claimed)
            return None
        return claimed

    def _claimable(self, no: str | None) -> str | None:
        if not no or get_row(self.s, Resident, no) is not None:
            return None
        return None if self._claimant(no) is not None else no

    def _number_misfits(self, f: Features, person_id: str, *, exclude: str) -> bool:
        """The person a resident number names does not fit: a row contradicts, or none confirms the name."""
        rows = self._rows_of([person_id], exclude=exclude).get(person_id, [])
        evidence = [(compare(f, r), r) for r in rows]
        return bool(evidence) and (any(contradicts(e) for e, _ in evidence)
                                   or not any(number_fits(e, f, r) for e, r in evidence))

    def _contradicts_person(self, f: Features, person_id: str, *, exclude: str) -> bool:
        rows = self._rows_of([person_id], exclude=exclude).get(person_id, [])
        return any(contradicts(compare(f, r)) for r in rows)

    # ---------------------------------------------------------------- a record seen again
    def _known(self, row: PersonRecordRow, person: PersonRecord, f: Features, feed: str,
               hint: str | None) -> Resolution:
        """Keep the record's person unless the new data contradicts it (then: own person + review)."""
        old = features_of_row(row)
        q = _Query(f, row.record, kept_apart=self._kept_apart(row.record))
        by_no = self._by_resident_no(q) if f.resident_no and f.resident_no != old.resident_no else None
        if by_no is not None and by_no != row.person_id:
            self.audit(row.record, by_no, "link", "auto:resident_no")
            return self._attach(row.record, feed, f, by_no, "resident_no", None, hint)
        renumbered = bool(old.resident_no and f.resident_no and old.resident_no != f.resident_no)
        changed = renumbered or contradicts(compare(f, old))
        if changed and self._contradicts_person(f, row.person_id, exclude=row.record):
            return self._detach(row, f, feed, hint)
        return self._attach(row.record, feed, f, row.person_id, "known", None, hint)

    def _detach(self, row: PersonRecordRow, f: Features, feed: str, hint: str | None) -> Resolution:
        old_person = row.person_id
        person_id = self.new_person(row.record, household_id=hint or household_id_for_record(row.record))
        self.audit(row.record, old_person, "detach", "auto:contradiction")
        self._propose(row.record, old_person, 0.0, {"update": "contradicts"})
        return self._attach(row.record, feed, f, person_id, "review", None, hint)

    # ---------------------------------------------------------------- blocking
    def blocking_statements(self, f: Features, *, household_no: str | None = None,
                            household_id: str | None = None, residents: bool = True) -> list[Select[Any]]:
        """The indexed look-ups that find candidates (exposed so a test can EXPLAIN them)."""
        stmts: list[Select[Any]] = []
        tables: list[tuple[Any, Any]] = [(PersonRecordRow, PersonRecordRow.person_id)]
        if residents:
            tables.insert(0, (Resident, Resident.person_id))
        else:
            household_no = None
        for table, pid in tables:
            cond = self._block_condition(table, f)
            if cond is not None:
                stmt = select(pid).where(cond)
                stmts.append(stmt if f.birth_date is not None else stmt.limit(BLOCK_LIMIT))
        if residents:
            stmts += name_blocking_statements(f)
            if f.birth_date is not None:
                stmts += unknown_birth_statements(f)
        return stmts + self.household_statements(f, household_no=household_no, household_id=household_id,
                                                  residents=residents)

    @staticmethod
    def household_statements(f: Features, *, household_no: str | None = None, household_id: str | None = None,
                             residents: bool = True) -> list[Select[Any]]:
        """The look-ups of a hinted household's members born that day or on a keying slip of it."""
        stmts: list[Select[Any]] = []
        if not residents:
            household_no = None
        births = [f.birth_date, *slip_birth_dates(f.birth_date)] if f.birth_date is not None else []
        if births and household_no:
            stmts.append(select(Resident.person_id).where(Resident.household_no == household_no,
                                                          Resident.birth_date.in_(births)))
        if births and household_id:
            stmts.append(select(PersonRecordRow.person_id).where(PersonRecordRow.household_id == household_id,
                                                                 PersonRecordRow.birth_date.in_(births)))
        return stmts

    @staticmethod
    def _block_condition(table: Any, f: Features) -> ColumnElement[bool] | None:
        """(birth, reading) OR (birth, folded name) OR (address, birth) OR (a slipped birth, reading) OR
        (birth, reading of the given name); without a birth date,
        reading OR folded name (capped: such a record can only go to review, never link)."""
        b = f.birth_date
        ors: list[ColumnElement[bool]] = []
        if b is not None:
            if f.kana_key:
                ors.append(and_(table.birth_date == b, table.kana_key == f.kana_key))
            if f.folded_key:
                ors.append(and_(table.birth_date == b, table.folded_key == f.folded_key))
            if f.address_key:
                ors.append(and_(table.address_key == f.address_key, table.birth_date == b))
            if f.kana_key:  # a keying slip of the birth date (one day off, month and day swapped)
                ors.append(and_(table.birth_date.in_(slip_birth_dates(b)), table.kana_key == f.kana_key))
            if f.given_kana:  # a changed surname: same birth date and reading of the given name
                ors.append(and_(table.birth_date == b, table.given_kana == f.given_kana))
        else:
            if f.kana_key:
                ors.append(table.kana_key == f.kana_key)
            if f.folded_key:
                ors.append(table.folded_key == f.folded_key)
        return or_(*ors) if ors else None

    def _candidates(self, q: _Query, *, residents: bool = True) -> list[Candidate]:
        index = blocking_of(self.s)
        found = index.find(q.features, residents=residents) if index is not None else None
        if found is None:
            stmts = self.blocking_statements(q.features, household_no=q.household_no,
                                             household_id=q.household_id, residents=residents)
            found = set()
        else:  # the key look-ups were read ahead for the batch; the household ones are asked here
            stmts = self.household_statements(q.features, household_no=q.household_no,
                                              household_id=q.household_id, residents=residents)
        for stmt in stmts:
            found.update(r[0] for r in self.s.execute(stmt))
        found -= q.kept_apart
        if not found:
            return []
        rows = self._rows_of(sorted(found), exclude=q.record)
        households = self._households_of(sorted(found))
        cands = [self._score(q, pid, rows.get(pid, []), households.get(pid)) for pid in sorted(found)]
        return [c for c in cands if c.rows]

    def _rows_of(self, person_ids: Sequence[str], *, exclude: str) -> dict[str, list[Features]]:
        """Every known row (registry and source records) of these persons, by person."""
        out: dict[str, list[Features]] = {}
        if not person_ids:
            return out
        index = blocking_of(self.s)
        held = index.rows_of(person_ids) if index is not None else None
        if held is not None:
            residents, alt, records = held
        else:
            residents = list(self.s.scalars(select(Resident).where(Resident.person_id.in_(person_ids))))
            alt = names_by_resident(self.s, [res.resident_no for res in residents])
        known_as: dict[str, tuple[tuple[str | None, str | None, str | None], ...]] = {}
        for res in residents:
            out.setdefault(res.person_id, []).append(with_names(features_of_row(res), alt.get(res.resident_no)))
            if res.resident_no in alt:  # a record of this person may use any name the registry knows
                known_as[res.person_id] = ((res.name_key, res.folded_key, res.kana_key), *alt[res.resident_no])
        if held is None:
            records = list(self.s.scalars(select(PersonRecordRow).where(PersonRecordRow.person_id.in_(person_ids),
                                                                        PersonRecordRow.record != exclude)))
        for pr in records:
            if pr.record == exclude:
                continue
            out.setdefault(pr.person_id, []).append(with_names(features_of_row(pr), known_as.get(pr.person_id)))
        return out

    def _households_of(self, person_ids: Sequence[str]) -> dict[str, str | None]:
        if blocking_of(self.s) is not None:  # the persons were read ahead: no query (the session holds them)
            persons = [get_row(self.s, Person, pid) for pid in person_ids]
            return {p.id: p.household_id for p in persons if p is not None}
        stmt = select(Person.id, Person.household_id).where(Person.id.in_(person_ids))
        return {pid: hid for pid, hid in self.s.execute(stmt)}

    def _score(self, q: _Query, person_id: str, rows: list[Features], household: str | None) -> Candidate:
        """Best row's score, unless any row contradicts (then the worst one's: a veto)."""
        if not rows:
            return Candidate(person_id, 0.0, {}, False, False, False, 0)
        scored = []
        same_household = q.household_id is not None and household == q.household_id
        for r, ev in zip(rows, compare_rows(q.features, rows, same_household=same_household), strict=True):
            if r.resident_no and q.features.resident_no and r.resident_no != q.features.resident_no:
                ev["resident_no"] = "differ"
            scored.append((points(ev), ev))
        bad = [(p, e) for p, e in scored if contradicts(e)]
        score, ev = min(bad, key=lambda t: t[0]) if bad else max(scored, key=lambda t: t[0])
        # another resident number blocks, unless the record's own number names someone born on another
        # day and this candidate agrees on everything (scoring.overrules_number)
        number_differs = any(e.get("resident_no") == "differ" for _, e in scored)
        blocked = (person_id in q.no_autolink or (number_differs and not (q.number_misnames and overrules_number(ev)))
                   or not may_link(q.features, ev, rows))
        # a birth slip that may link stands in for the birth date (may_link: address or phone agree)
        birth = ev.get("birth") == "agree" or (not blocked and ev.get("birth", "").startswith("slip_"))
        return Candidate(person_id, score, ev, birth, bool(bad), not blocked, len(rows))

    def _without_shadows(self, cands: list[Candidate]) -> list[Candidate]:
        """Leave out of the choice the close contenders that are only *shadows* of another one:
        persons without a resident number whose every record waits in review against that other
        contender. Such a person is "maybe that one"; counting it as a rival would send every later
        record of the same human to review too. Without it the choice is the one the engine would
        make had the uncertain records never arrived, so no link is made that would not have been
        made anyway."""
        if len(cands) < 2:
            return cands
        top = max(c.score for c in cands)
        close = {c.person_id for c in cands if top - c.score < MARGIN}
        if len(close) < 2:
            return cands
        owners = {pid for pid in close if self._unclaimed(pid)
                  and self.s.scalar(select(Resident.resident_no).where(Resident.person_id == pid).limit(1)) is None}
        if not owners:
            return cands
        records: dict[str, set[str]] = {}
        stmt = select(PersonRecordRow.record, PersonRecordRow.person_id).where(
            PersonRecordRow.person_id.in_(sorted(owners)))
        for record, pid in self.s.execute(stmt):
            records.setdefault(pid, set()).add(record)
        waiting: dict[str, set[str]] = {}
        every = sorted(r for rs in records.values() for r in rs)
        for record, target in self.s.execute(select(IdentityReview.record, IdentityReview.candidate_person).where(
                IdentityReview.record.in_(every), IdentityReview.status == "pending")):
            waiting.setdefault(record, set()).add(target)
        # a shadow waits, for every record, against a close contender that is not a shadow itself
        shadows = set(records)
        while True:
            anchors = close - shadows
            still = {pid for pid in shadows if all(waiting.get(r, set()) & anchors for r in records[pid])}
            if still == shadows:
                break
            shadows = still
        return [c for c in cands if c.person_id not in shadows] if close - shadows else cands

    @staticmethod
    def _choose(cands: list[Candidate]) -> tuple[Candidate | None, Literal["matched", "review", "new"]]:
        if not cands:
            return None, "new"
        ranked = sorted(cands, key=lambda c: (-c.score, c.person_id))
        best = ranked[0]
        second = ranked[1].score if len(ranked) > 1 else float("-inf")
        if best.score < REVIEW:
            return best, "new"
        clear = best.score - second >= MARGIN
        if best.score >= LINK and clear and best.birth_agrees and not best.contradiction and best.may_autolink:
            return best, "matched"
        return best, "review"

    # ---------------------------------------------------------------- writes
    def _attach(self, record: str, feed: str, f: Features, person_id: str, outcome: Outcome,
                score: float | None, hint: str | None) -> Resolution:
        person = get_row(self.s, Person, person_id)
        assert person is not None
        if person.household_id is None:
            person.household_id = hint or household_id_for_record(record)
            self.ensure_named_household(person.household_id, record)
        row = get_row(self.s, PersonRecordRow, record)
        index = blocking_of(self.s)
        if row is None:
            row = PersonRecordRow(record=record, feed=feed)
            self.s.add(row)
        elif index is not None:
            index.touch(row.person_id)
        row.person_id, row.household_id = person_id, person.household_id
        row.resident_no = f.resident_no
        row.name_key, row.folded_key, row.kana_key = f.name_key, f.folded_key, f.kana_key
        row.birth_date, row.sex, row.address_key, row.phone_key = f.birth_date, f.sex, f.address_key, f.phone_key
        _store_parts(row, f)
        row.updated_at = utcnow()
        if index is not None:
            index.note_record(row)
        return Resolution(person_id, person.household_id, outcome, score)

    def new_person(self, record: str, *, resident_no: str | None = None, household_id: str | None = None) -> str:
        base = digest(record)
        pid, n = "p-" + base, 0
        while get_row(self.s, Person, pid) is not None:
            n += 1
            pid = "p-" + digest(f"{record}#{n}")
        if household_id is not None:
            self.ensure_named_household(household_id, record)
        self.s.add(Person(id=pid, resident_no=resident_no, household_id=household_id, created_by=record,
                          created_at=utcnow()))
        self.s.info.setdefault(UNOBSERVED, set()).add(pid)
        if resident_no is not None:
            self._claimed(resident_no, pid)
        return pid

    def _ensure_household(self, household_no: str, origin: Literal["registry", "source"]) -> str:
        hid = household_id_for_no(household_no)
        row = get_row(self.s, Household, hid)
        if row is None:
            self.s.add(Household(id=hid, household_no=household_no, origin=origin))
        elif origin == "registry" and row.origin != "registry":
            row.origin = "registry"
        return hid

    def ensure_named_household(self, household_id: str, record: str) -> None:
        if get_row(self.s, Household, household_id) is None:
            self.s.add(Household(id=household_id, household_no=None, origin="source", named_by=record))

    def _household_no(self, household_id: str | None) -> str | None:
        if household_id is None:
            return None
        row = get_row(self.s, Household, household_id)
        return row.household_no if row else None

    def _move_person(self, person_id: str, household_id: str) -> None:
        """A registry household (new or changed) is the person's household, for all their records."""
        person = get_row(self.s, Person, person_id)
        assert person is not None
        if person.household_id != household_id:
            moved = person.household_id is not None
            person.household_id = household_id
            if moved:
                self.s.execute(update(PersonRecordRow).where(PersonRecordRow.person_id == person_id)
                               .values(household_id=household_id))

    # ---------------------------------------------------------------- reviews
    def _kept_apart(self, record: str) -> set[str]:
        read = self.s.info.get("tsunagu_kept_apart")
        if read is not None and record in read[0]:
            return set(read[1].get(record, ()))
        stmt = select(IdentityDecision.person_id).where(IdentityDecision.record == record,
                                                        IdentityDecision.decision == "keep_apart")
        return set(self.s.scalars(stmt))

    def _propose_all(self, record: str, cands: Iterable[Candidate]) -> None:
        for c in sorted(cands, key=lambda c: -c.score)[:3]:
            if c.score >= REVIEW:
                self._propose(record, c.person_id, c.score, c.evidence)

    def _propose(self, record: str, person_id: str, score: float, evidence: dict[str, str]) -> None:
        if person_id in self._kept_apart(record):
            return
        stmt = select(IdentityReview).where(IdentityReview.record == record,
                                            IdentityReview.candidate_person == person_id,
                                            IdentityReview.status == "pending")
        review = self.s.scalar(stmt)
        if review is None:
            review = IdentityReview(record=record, candidate_person=person_id, status="pending", created_at=utcnow())
            self.s.add(review)
        review.score, review.evidence = score, dict(evidence)
        self.s.flush()

    def audit(self, record: str, person_id: str, decision: str, user: str, review_id: int | None = None) -> None:
        self.s.add(IdentityDecision(record=record, person_id=person_id, decision=decision, review_id=review_id,
                                    decided_by=user, decided_at=utcnow()))


def features_for(s: Session, person: PersonRecord | ResidentObservedV1,
                 address_prefixes: tuple[str, ...] = ()) -> Features:
    """``features_of(person)`` (a resident event: ``features_of_resident``), computed once per transaction for
    the same parsed record (the read-ahead's)."""
    cache: dict[int, tuple[Any, tuple[str, ...], Features]] = s.info.setdefault("tsunagu_features", {})
    hit = cache.get(id(person))
    if hit is not None and hit[0] is person and hit[1] == address_prefixes:
        return hit[2]
    f = (features_of_resident(person, address_prefixes) if isinstance(person, ResidentObservedV1)
         else features_of(person, address_prefixes))
    cache[id(person)] = (person, address_prefixes, f)
    return f


def _store_parts(row: Resident | PersonRecordRow, f: Features) -> None:
    row.family_key, row.given_key, row.family_kana, row.given_kana = (f.family_key, f.given_key, f.family_kana,
                                                                      f.given_kana)


def features_of_row(row: Resident | PersonRecordRow) -> Features:
    registry = isinstance(row, Resident)
    return Features(row.name_key, row.folded_key, row.kana_key, row.birth_date, row.sex, row.address_key,
                    row.phone_key, row.resident_no, row.family_key, row.given_key, row.family_kana, row.given_kana,
                    row.former_family_key if isinstance(row, Resident) else None,
                    row.former_family_kana if isinstance(row, Resident) else None, registry)


def persons_export(session: Session) -> Iterator[tuple[str, str, str | None]]:
    """(record key, person id, household id) for every record known, ordered by record key."""
    registry = (
        select(Resident.resident_no, Resident.person_id, Person.household_id)
        .join(Person, Person.id == Resident.person_id)
        .order_by(Resident.resident_no)
    )
    key: Any = PersonRecordRow.record
    if session.get_bind().dialect.name == "postgresql":
        key = key.collate("C")  # byte order, as Python compares the keys in heapq.merge
    sources = select(PersonRecordRow.record, PersonRecordRow.person_id, PersonRecordRow.household_id).order_by(key)
    a = ((registry_record(no), pid, hid) for no, pid, hid in session.execute(registry))
    b = ((rec, pid, hid) for rec, pid, hid in session.execute(sources))
    yield from heapq.merge(a, b, key=lambda t: t[0])
