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

Two records with different resident numbers are never linked automatically, and a pair a
reviewer kept apart is never proposed or linked again. A resident number on a record whose name
differs is trusted only when the reading confirms it (a homophone slip), never for another name
with no reading (a twin's number typed by mistake). A person made for a record that waits in
review is a *shadow* of its candidate, not a rival: it does not hold back the next clear link.

Tables live on :class:`hub.db.Base`; evidence stored for reviews names features, never names.
"""

from __future__ import annotations

import hashlib
import heapq
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    ColumnElement,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    and_,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from hub.db import Base, UTCDateTime
from schemas.events import CaseV1, PersonRecord, ResidentObservedV1
from schemas.normalize import address_key, fold_kanji, kana_key, name_key, phone_key

Outcome = Literal["resident_no", "matched", "review", "new", "known"]
Decision = Literal["link", "keep_apart"]

# --------------------------------------------------------------------------- thresholds
#: points per feature comparison (log-odds-like; positive = same person)
WEIGHTS: dict[str, dict[str, float]] = {
    "birth": {"agree": 3.0, "differ": -10.0},
    "name": {"exact": 4.0, "folded": 3.0, "differ": -2.0},
    "kana": {"agree": 4.0, "similar": 2.0, "differ": -8.0},
    "sex": {"agree": 1.0, "differ": -8.0},
    "address": {"agree": 2.0, "differ": -1.0},
    "phone": {"agree": 2.0},
    "household": {"same": 2.0},
}
#: auto link at or above (needs equal birth dates, no contradiction, and MARGIN over the runner-up)
LINK = 7.0
#: review queue at or above (the record gets its own hub person meanwhile)
REVIEW = 3.0
#: the best candidate must beat the second by this much to link automatically
MARGIN = 3.0
#: cap on rows read per blocking query (common names without a birth date)
BLOCK_LIMIT = 50
#: features whose disagreement alone rules out "same person"
HARD = ("birth", "sex", "kana")


def _now() -> datetime:
    return datetime.now(UTC)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def registry_record(resident_no: str) -> str:
    return f"registry:{resident_no}"


def household_id_for_no(household_no: str) -> str:
    return "h-" + _digest(f"household_no:{household_no}")


def household_id_for_record(record: str) -> str:
    return "h-" + _digest(f"record:{record}")


# --------------------------------------------------------------------------- tables


class Person(Base):
    """A hub person: one human, as far as the evidence shows."""

    __tablename__ = "persons"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    resident_no: Mapped[str | None] = mapped_column(String(10), unique=True)
    household_id: Mapped[str | None] = mapped_column(String(40), index=True)
    created_by: Mapped[str] = mapped_column(String(200))  # the record key that created it
    merged_into: Mapped[str | None] = mapped_column(String(40))  # set when a reviewer linked it away
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Household(Base):
    """A 世帯: from the registry (household_no) or named by a source (kodomo setai_no, houkatsu subject)."""

    __tablename__ = "households"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    household_no: Mapped[str | None] = mapped_column(String(10), unique=True)
    origin: Mapped[str] = mapped_column(String(16))  # registry | source
    named_by: Mapped[str | None] = mapped_column(String(200))


class Resident(Base):
    """住民記録: the registry's current view of one resident (personal data)."""

    __tablename__ = "residents"

    resident_no: Mapped[str] = mapped_column(String(10), primary_key=True)
    household_no: Mapped[str] = mapped_column(String(10), index=True)
    relation: Mapped[str | None] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(100))
    name_key: Mapped[str | None] = mapped_column(String(100))
    folded_key: Mapped[str | None] = mapped_column(String(100))
    kana_key: Mapped[str | None] = mapped_column(String(100))
    birth_date: Mapped[date | None] = mapped_column(Date)
    sex: Mapped[str | None] = mapped_column(String(16))
    address_key: Mapped[str | None] = mapped_column(String(200))
    phone_key: Mapped[str | None] = mapped_column(String(32))
    moved_on: Mapped[date | None] = mapped_column(Date)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)

    __table_args__ = (
        Index("ix_residents_birth_kana", "birth_date", "kana_key"),
        Index("ix_residents_birth_folded", "birth_date", "folded_key"),
        Index("ix_residents_kana", "kana_key"),
        Index("ix_residents_folded", "folded_key"),
        Index("ix_residents_address_birth", "address_key", "birth_date"),
    )


class PersonRecordRow(Base):
    """A person as one source record names them (every feed but the registry), and its hub person."""

    __tablename__ = "person_records"

    record: Mapped[str] = mapped_column(String(200), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    household_id: Mapped[str | None] = mapped_column(String(40), index=True)
    feed: Mapped[str] = mapped_column(String(32))
    resident_no: Mapped[str | None] = mapped_column(String(10), index=True)
    name_key: Mapped[str | None] = mapped_column(String(100))
    folded_key: Mapped[str | None] = mapped_column(String(100))
    kana_key: Mapped[str | None] = mapped_column(String(100))
    birth_date: Mapped[date | None] = mapped_column(Date)
    sex: Mapped[str | None] = mapped_column(String(16))
    address_key: Mapped[str | None] = mapped_column(String(200))
    phone_key: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_person_records_birth_kana", "birth_date", "kana_key"),
        Index("ix_person_records_birth_folded", "birth_date", "folded_key"),
        Index("ix_person_records_kana", "kana_key"),
        Index("ix_person_records_folded", "folded_key"),
        Index("ix_person_records_address_birth", "address_key", "birth_date"),
    )


class IdentityReview(Base):
    """A pair (record, candidate person) a human must decide. Evidence names features, never values."""

    __tablename__ = "identity_reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record: Mapped[str] = mapped_column(String(200), index=True)
    candidate_person: Mapped[str] = mapped_column(String(40))
    score: Mapped[float] = mapped_column(Float)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending | linked | kept_apart
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class IdentityDecision(Base):
    """Audit trail of every link / keep-apart decision (human or automatic re-link)."""

    __tablename__ = "identity_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record: Mapped[str] = mapped_column(String(200))
    person_id: Mapped[str] = mapped_column(String(40))
    decision: Mapped[str] = mapped_column(String(16))  # link | keep_apart | detach
    review_id: Mapped[int | None] = mapped_column(Integer)
    decided_by: Mapped[str] = mapped_column(String(100))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_identity_decisions_record_person", "record", "person_id"),)


# --------------------------------------------------------------------------- features and scoring
@dataclass(frozen=True, slots=True)
class Features:
    """Comparable keys of one person record (no raw names)."""

    name_key: str | None
    folded_key: str | None
    kana_key: str | None
    birth_date: date | None
    sex: str | None  # male | female, else None
    address_key: str | None
    phone_key: str | None
    resident_no: str | None = None


def _opt(value: str | None) -> str | None:
    return value if value else None


def features_of(person: PersonRecord, address_prefixes: Sequence[str] = ()) -> Features:
    nk = _opt(name_key(person.name))
    sex = person.sex.value if person.sex.value in ("male", "female") else None
    return Features(
        name_key=nk,
        folded_key=fold_kanji(nk) if nk else None,
        kana_key=_opt(kana_key(person.kana)) if person.kana else None,
        birth_date=person.birth_date,
        sex=sex,
        address_key=_opt(address_key(person.address, address_prefixes)) if person.address else None,
        phone_key=phone_key(person.phone),
        resident_no=person.resident_no,
    )


def features_of_row(row: Resident | PersonRecordRow) -> Features:
    return Features(row.name_key, row.folded_key, row.kana_key, row.birth_date, row.sex, row.address_key,
                    row.phone_key, row.resident_no)


_LOOSE_KANA = str.maketrans({"ヂ": "ジ", "ヅ": "ズ", "ヴ": "ブ", "ヲ": "オ", "ー": ""})


def _kana_loose(k: str) -> str:
    return k.translate(_LOOSE_KANA).replace("ウ", "").replace("オ", "")


def compare(a: Features, b: Features) -> dict[str, str]:
    """Which features agree, feature → agree / differ / … / unknown (the evidence; no values)."""
    ev: dict[str, str] = {}
    ev["birth"] = _eq(a.birth_date, b.birth_date)
    if a.name_key and b.name_key:
        ev["name"] = "exact" if a.name_key == b.name_key else "folded" if a.folded_key == b.folded_key else "differ"
    else:
        ev["name"] = "unknown"
    ev["kana"] = _eq(a.kana_key, b.kana_key)
    if ev["kana"] == "differ" and a.kana_key and b.kana_key and _kana_loose(a.kana_key) == _kana_loose(b.kana_key):
        ev["kana"] = "similar"
    ev["sex"] = _eq(a.sex, b.sex)
    ev["address"] = _address_eq(a.address_key, b.address_key)
    ev["phone"] = _eq(a.phone_key, b.phone_key)
    return ev


def _eq(a: object, b: object) -> str:
    if a is None or b is None:
        return "unknown"
    return "agree" if a == b else "differ"


def _address_eq(a: str | None, b: str | None) -> str:
    """Equal keys, or one is the other with a city prefix left on (みなと市中央1-2-3 / 中央1-2-3)."""
    if a is None or b is None:
        return "unknown"
    short, long_ = sorted((a, b), key=len)
    return "agree" if short == long_ or (len(short) >= 4 and long_.endswith(short)) else "differ"


def points(evidence: dict[str, str]) -> float:
    return sum(WEIGHTS.get(k, {}).get(v, 0.0) for k, v in evidence.items())


def contradicts(evidence: dict[str, str]) -> bool:
    """A hard contradiction: birth date, sex or reading known on both sides and different."""
    return any(evidence.get(k) == "differ" for k in HARD)


def number_fits(evidence: dict[str, str], a: Features | None = None, b: Features | None = None) -> bool:
    """A resident number is trusted for a record when nothing contradicts it and the name agrees
    (exactly or folded), or the reading does (a homophone slip), or the part of the name written in
    kana is the other side's reading (高橋ヨシオ for 髙橋 義雄). Another name with nothing to confirm it
    is someone else's number typed by mistake (a twin's, a sibling's): not trusted."""
    if contradicts(evidence):
        return False
    if evidence.get("name") != "differ" or evidence.get("kana") in ("agree", "similar"):
        return True
    return a is not None and b is not None and (_kana_written(a, b) or _kana_written(b, a))


_KANA_RUN = re.compile(r"^[ァ-ヶー]{2,}|[ァ-ヶー]{2,}$")


def _kana_written(a: Features, b: Features) -> bool:
    """``a``'s name is written (in part) in kana, and that part is how ``b``'s reading begins or ends."""
    if not a.name_key or not b.kana_key:
        return False
    name = kana_key(a.name_key)
    if name == b.kana_key:
        return True
    for m in _KANA_RUN.finditer(name):
        part = m.group()
        if (m.start() == 0 and b.kana_key.startswith(part)) or (m.end() == len(name) and b.kana_key.endswith(part)):
            return True
    return False


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


@dataclass(frozen=True, slots=True)
class ReviewView:
    id: int
    record: str
    candidate_person: str
    score: float
    evidence: dict[str, Any]
    status: str


@dataclass(slots=True)
class _Query:
    """What to look for: features, the hinted household and what must be left out."""

    features: Features
    record: str
    household_id: str | None = None
    household_no: str | None = None
    kept_apart: set[str] = field(default_factory=set)
    no_autolink: set[str] = field(default_factory=set)


# --------------------------------------------------------------------------- the service
class IdentityService:
    """Resolves person records to hub persons within one SQLAlchemy session (the caller commits)."""

    def __init__(self, session: Session, *, address_prefixes: Sequence[str] = ()) -> None:
        self.s = session
        self.address_prefixes = tuple(address_prefixes)

    # ---------------------------------------------------------------- registry
    def observe_resident(self, ev: ResidentObservedV1) -> Resolution:
        r = ev.resident
        no, household_no = r.resident_no, r.household_no
        assert no is not None and household_no is not None  # ResidentObservedV1 guarantees both
        f = features_of(r, self.address_prefixes)
        household = self._ensure_household(household_no, origin="registry")
        row = self.s.get(Resident, no)
        if row is not None:
            self._fill_resident(row, r, f, ev.moved_on)
            self._move_person(row.person_id, household)
            return Resolution(row.person_id, household, "known")
        person_id, outcome, score = self._person_for_new_resident(r.record, no, f)
        self._move_person(person_id, household)
        row = Resident(resident_no=no, person_id=person_id)
        self._fill_resident(row, r, f, ev.moved_on)
        self.s.add(row)
        self.s.flush()
        return Resolution(person_id, household, outcome, score)

    def _fill_resident(self, row: Resident, r: PersonRecord, f: Features, moved_on: date | None) -> None:
        row.household_no = r.household_no or ""
        row.relation = r.relation.value if r.relation else None
        row.name = r.name
        row.name_key, row.folded_key, row.kana_key = f.name_key, f.folded_key, f.kana_key
        row.birth_date, row.sex, row.address_key, row.phone_key = f.birth_date, f.sex, f.address_key, f.phone_key
        row.moved_on = moved_on

    def _person_for_new_resident(self, record: str, no: str, f: Features) -> tuple[str, Outcome, float | None]:
        """A resident seen for the first time: a hub person that claimed this resident_no, or one
        made earlier from source records that matches unambiguously, or a new one."""
        claimed = self.s.scalar(select(Person).where(Person.resident_no == no))
        if claimed is not None:
            if not self._number_misfits(f, claimed.id, exclude=record):
                return claimed.id, "resident_no", None
            claimed.resident_no = None  # the claim was wrong: release it, review the pair
            self.s.flush()
            self._propose(record, claimed.id, 0.0, {"resident_no": "conflict"})
        q = _Query(f, record, kept_apart=self._kept_apart(record))
        cands = [c for c in self._candidates(q, residents=False) if self._unclaimed(c.person_id)]
        best, kind = self._choose(self._without_shadows(cands))
        if best is not None and kind == "matched":
            person = self.s.get(Person, best.person_id)
            assert person is not None
            person.resident_no = no
            return best.person_id, "matched", best.score
        person_id = self._new_person(record, resident_no=no)
        if best is not None and kind == "review":
            self._propose_all(record, cands)
            return person_id, "review", best.score
        return person_id, "new", best.score if best else None

    def _unclaimed(self, person_id: str) -> bool:
        person = self.s.get(Person, person_id)
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
        f = features_of(person, self.address_prefixes)
        hint = household_hint or (self._ensure_household(source_household_no, "source") if source_household_no
                                  else None)
        existing = self.s.get(PersonRecordRow, person.record)
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
        person_id = self._new_person(q.record, resident_no=claim,
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
        resident = self.s.get(Resident, no)
        if resident is not None:
            row_f = features_of_row(resident)
            if number_fits(compare(q.features, row_f), q.features, row_f):
                return resident.person_id if resident.person_id not in q.kept_apart else None
            q.no_autolink.add(resident.person_id)
            return None
        claimed = self.s.scalar(select(Person.id).where(Person.resident_no == no))
        if claimed is None or claimed in q.kept_apart:
            return None
        if self._number_misfits(q.features, claimed, exclude=q.record):
            q.no_autolink.add(claimed)
            return None
        return claimed

    def _claimable(self, no: str | None) -> str | None:
        if not no or self.s.get(Resident, no) is not None:
            return None
        taken = self.s.scalar(select(Person.id).where(Person.resident_no == no))
        return None if taken else no

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
            self._audit(row.record, by_no, "link", "auto:resident_no")
            return self._attach(row.record, feed, f, by_no, "resident_no", None, hint)
        renumbered = bool(old.resident_no and f.resident_no and old.resident_no != f.resident_no)
        changed = renumbered or contradicts(compare(f, old))
        if changed and self._contradicts_person(f, row.person_id, exclude=row.record):
            return self._detach(row, f, feed, hint)
        return self._attach(row.record, feed, f, row.person_id, "known", None, hint)

    def _detach(self, row: PersonRecordRow, f: Features, feed: str, hint: str | None) -> Resolution:
        old_person = row.person_id
        person_id = self._new_person(row.record, household_id=hint or household_id_for_record(row.record))
        self._audit(row.record, old_person, "detach", "auto:contradiction")
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
        if f.birth_date is not None and household_no:
            stmts.append(select(Resident.person_id).where(Resident.household_no == household_no,
                                                          Resident.birth_date == f.birth_date))
        if f.birth_date is not None and household_id:
            stmts.append(select(PersonRecordRow.person_id).where(PersonRecordRow.household_id == household_id,
                                                                 PersonRecordRow.birth_date == f.birth_date))
        return stmts

    @staticmethod
    def _block_condition(table: Any, f: Features) -> ColumnElement[bool] | None:
        """(birth, reading) OR (birth, folded name) OR (address, birth); without a birth date,
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
        else:
            if f.kana_key:
                ors.append(table.kana_key == f.kana_key)
            if f.folded_key:
                ors.append(table.folded_key == f.folded_key)
        return or_(*ors) if ors else None

    def _candidates(self, q: _Query, *, residents: bool = True) -> list[Candidate]:
        found: set[str] = set()
        for stmt in self.blocking_statements(q.features, household_no=q.household_no,
                                             household_id=q.household_id, residents=residents):
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
        for res in self.s.scalars(select(Resident).where(Resident.person_id.in_(person_ids))):
            out.setdefault(res.person_id, []).append(features_of_row(res))
        stmt = select(PersonRecordRow).where(PersonRecordRow.person_id.in_(person_ids),
                                             PersonRecordRow.record != exclude)
        for pr in self.s.scalars(stmt):
            out.setdefault(pr.person_id, []).append(features_of_row(pr))
        return out

    def _households_of(self, person_ids: Sequence[str]) -> dict[str, str | None]:
        stmt = select(Person.id, Person.household_id).where(Person.id.in_(person_ids))
        return {pid: hid for pid, hid in self.s.execute(stmt)}

    def _score(self, q: _Query, person_id: str, rows: list[Features], household: str | None) -> Candidate:
        """Best row's score, unless any row contradicts (then the worst one's: a veto)."""
        if not rows:
            return Candidate(person_id, 0.0, {}, False, False, False, 0)
        scored = []
        for r in rows:
            ev = compare(q.features, r)
            if r.resident_no and q.features.resident_no and r.resident_no != q.features.resident_no:
                ev["resident_no"] = "differ"
            scored.append((points(ev), ev))
        bad = [(p, e) for p, e in scored if contradicts(e)]
        score, ev = min(bad, key=lambda t: t[0]) if bad else max(scored, key=lambda t: t[0])
        if q.household_id and household == q.household_id:
            ev = {**ev, "household": "same"}
            score += WEIGHTS["household"]["same"]
        blocked = person_id in q.no_autolink or any(e.get("resident_no") == "differ" for _, e in scored)
        return Candidate(person_id, score, ev, ev.get("birth") == "agree", bool(bad), not blocked, len(rows))

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
        person = self.s.get(Person, person_id)
        assert person is not None
        if person.household_id is None:
            person.household_id = hint or household_id_for_record(record)
            self._ensure_named_household(person.household_id, record)
        row = self.s.get(PersonRecordRow, record)
        if row is None:
            row = PersonRecordRow(record=record, feed=feed)
            self.s.add(row)
        row.person_id, row.household_id = person_id, person.household_id
        row.resident_no = f.resident_no
        row.name_key, row.folded_key, row.kana_key = f.name_key, f.folded_key, f.kana_key
        row.birth_date, row.sex, row.address_key, row.phone_key = f.birth_date, f.sex, f.address_key, f.phone_key
        row.updated_at = _now()
        self.s.flush()
        return Resolution(person_id, person.household_id, outcome, score)

    def _new_person(self, record: str, *, resident_no: str | None = None, household_id: str | None = None) -> str:
        base = _digest(record)
        pid, n = "p-" + base, 0
        while self.s.get(Person, pid) is not None:
            n += 1
            pid = "p-" + _digest(f"{record}#{n}")
        if household_id is not None:
            self._ensure_named_household(household_id, record)
        self.s.add(Person(id=pid, resident_no=resident_no, household_id=household_id, created_by=record,
                          created_at=_now()))
        self.s.flush()
        return pid

    def _ensure_household(self, household_no: str, origin: Literal["registry", "source"]) -> str:
        hid = household_id_for_no(household_no)
        row = self.s.get(Household, hid)
        if row is None:
            self.s.add(Household(id=hid, household_no=household_no, origin=origin))
            self.s.flush()
        elif origin == "registry" and row.origin != "registry":
            row.origin = "registry"
        return hid

    def _ensure_named_household(self, household_id: str, record: str) -> None:
        if self.s.get(Household, household_id) is None:
            self.s.add(Household(id=household_id, household_no=None, origin="source", named_by=record))
            self.s.flush()

    def _household_no(self, household_id: str | None) -> str | None:
        if household_id is None:
            return None
        row = self.s.get(Household, household_id)
        return row.household_no if row else None

    def _move_person(self, person_id: str, household_id: str) -> None:
        """A registry household (new or changed) is the person's household, for all their records."""
        person = self.s.get(Person, person_id)
        assert person is not None
        if person.household_id != household_id:
            moved = person.household_id is not None
            person.household_id = household_id
            if moved:
                self.s.execute(update(PersonRecordRow).where(PersonRecordRow.person_id == person_id)
                               .values(household_id=household_id))

    # ---------------------------------------------------------------- reviews
    def _kept_apart(self, record: str) -> set[str]:
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
            review = IdentityReview(record=record, candidate_person=person_id, status="pending", created_at=_now())
            self.s.add(review)
        review.score, review.evidence = score, dict(evidence)
        self.s.flush()

    def _audit(self, record: str, person_id: str, decision: str, user: str, review_id: int | None = None) -> None:
        self.s.add(IdentityDecision(record=record, person_id=person_id, decision=decision, review_id=review_id,
                                    decided_by=user, decided_at=_now()))


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
    now = _now()
    if decision == "link":
        _link(session, review.record, review.candidate_person)
        review.status = "linked"
    elif decision == "keep_apart":
        _keep_apart(svc, review.record, review.candidate_person)
        review.status = "kept_apart"
    else:
        raise ReviewError("decision must be link or keep_apart")
    review.decided_by, review.decided_at = user, now
    svc._audit(review.record, review.candidate_person, decision, user, review_id)
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
            svc._ensure_named_household(own.household_id, record)
        row.person_id, row.household_id = own.id, own.household_id
    else:
        household = household_id_for_record(record)
        row.person_id = svc._new_person(record, household_id=household)
        row.household_id = household
    svc._audit(record, person_id, "detach", "auto:keep_apart")
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
