"""What the pipeline stages ask of identity, consent and alerts: one small function per question.

Each function is small and named for the one thing the pipeline asks of it, so the
pipeline reads as the sharing rules do and each rule stays testable on its own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from consent.audit import AuditInput
from consent.decide import decide, minimal_form
from consent.model import ConsentVersion, Decision, DecisionInput
from consent.store import ConsentRepository, ConsentVersionRow, append_audit, metadata
from hub.db import prefetch
from hub.identity.blocking import blocking_of
from hub.identity.membership import (
    household_at,
    intervals_from,
    observations_of,
    persons_seen_in_many,
    slices_from,
    spans_from,
)
from hub.identity.resolver import UNOBSERVED, IdentityService, features_for
from hub.identity.scoring import Features
from hub.identity.tables import Person, PersonRecordRow, Resident
from hub.pipeline.alerts import (
    DEFAULT_SETTINGS,
    KINDS,
    AlertKind,
    CaseFact,
    HouseholdSnapshot,
    Member,
    derive_child_of,
    diff_alerts,
    ended,
    evaluate,
    holds_again,
    may_hold,
    view,
)
from hub.pipeline.tables import AlertState, CaseEvent, CaseState
from hub.pipeline.timers import StageTimers, timed
from schemas.codes import FEED_FIELD, RELATION_LABELS, Feed, Field, MemberNote, Relation, Topic
from schemas.envelope import CloudEvent, stable_event_id
from schemas.events import (
    AlertV1,
    CaseV1,
    ConsentV1,
    PersonObservedV1,
    ReferralRequestedV1,
    ResidentObservedV1,
    WithdrawalNoticeV1,
    parse_payload,
)

JST = timezone(timedelta(hours=9), "JST")


def feed_of(source: str) -> str | None:
    """``urn:tsunagu:connector:houkatsu:C01`` → ``houkatsu``."""
    parts = source.split(":")
    if len(parts) >= 4 and parts[:3] == ["urn", "tsunagu", "connector"]:
        return parts[3]
    return None


def field_of_feed(feed: Feed) -> Field:
    return FEED_FIELD[feed]


def aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- team / 支援会議 output
def team_event(ev: CloudEvent) -> bytes:
    """The team gets the event in full, with the hub's person and household attached."""
    return ev.to_json_bytes()


def _derived(ev: CloudEvent, kind: str, event_type: str, data: BaseModel, **extensions: Any) -> bytes:
    """A hub event derived from one source event: a stable id of its own, the source's time and record."""
    out = CloudEvent(
        id=stable_event_id(kind, ev.source, ev.id),
        source="urn:tsunagu:hub",
        type=event_type,
        time=ev.time,
        sourcerecord=ev.sourcerecord,
        household=ev.household,
        data=data.model_dump(mode="json"),
        **extensions,
    )
    return out.to_json_bytes()


def support_meeting_event(ev: CloudEvent, case: CaseV1, on: date) -> bytes:
    """The 支援会議 gets the minimal form only (第106条の6): no names, no free text, no 要配慮 details.

    Not even the hub person id: the meeting is convened for a household.
    """

    change = ev.type.split(".")[-2]  # jp.tsunagu.case.opened.v1 → opened
    return _derived(ev, "support_meeting", "jp.tsunagu.support_meeting.case.v1", minimal_form(case, change, on),
                    field=ev.field)


def withdrawal_notice(ev: CloudEvent, consent: ConsentV1) -> bytes:
    """Tells the team's views to hide the person's earlier events of these fields."""
    notice = WithdrawalNoticeV1(consent_id=consent.consent_id, fields=consent.fields, effective=ev.time)
    return _derived(ev, "withdrawal", "jp.tsunagu.team.withdrawal.v1", notice, person=ev.person)


# --------------------------------------------------------------------------- identity (stage 1)
def resolve_identity(s: Session, ev: CloudEvent, payload: BaseModel) -> tuple[str | None, str | None]:
    """The hub person and household an event is about; (None, None) when it cannot be told."""

    svc = IdentityService(s)
    if isinstance(payload, ResidentObservedV1):
        r = svc.observe_resident(payload, ev.id)
        return r.person_id, r.household_id
    elif isinstance(payload, CaseV1):
        resolved = svc.resolve_case(payload)
        r = resolved.get(ev.sourcerecord) or resolved[payload.subject.record]
    elif isinstance(payload, ReferralRequestedV1):
        r = svc.resolve(payload.subject, feed=payload.feed.value)
    elif isinstance(payload, PersonObservedV1):
        r = svc.resolve(payload.person, feed=payload.feed.value)
    elif isinstance(payload, ConsentV1):
        # A consent names its subject; it never creates a person. Unknown subject → unresolved
        # (the consent is still kept under its subject keys and found by later events).
        if payload.subject_resident_no:
            p = s.scalar(select(Person).where(Person.resident_no == payload.subject_resident_no))
            if p is not None:
                return p.id, p.household_id
        if payload.subject_record:
            row = s.get(PersonRecordRow, payload.subject_record)
            if row is not None:
                p = s.get(Person, row.person_id)
                return row.person_id, (p.household_id if p else row.household_id)
        return None, None
    else:
        return None, None
    return r.person_id, household_as_of(s, r.person_id, r.household_id, ev.time)


def household_as_of(s: Session, person: str, household: str | None, at: datetime) -> str | None:
    """None for a registry person who was in no household of the city on the event's source day (left:
    死亡, 転出, 消除; or not yet arrived), so the old household's team receives nothing new attributed to
    it; otherwise the resolved household (a 転居 keeps the registry-move logic: cases follow the person)."""
    if person in s.info.get(UNOBSERVED, ()):
        return household  # made in this batch, never observed by the registry: no query needed
    on = aware(at).astimezone(JST).date()
    index = blocking_of(s)
    held = index.observations_of(person) if index is not None else None
    if held is None:
        known, then = household_at(s, person, on)
    else:  # read ahead for the batch
        known, then = bool(held), next((i.household_id for i in intervals_from(held) if i.holds_on(on)), None)
    return None if known and then is None else household


# --------------------------------------------------------------------------- consent gate
def _values_of(data: Any, keys: frozenset[str]) -> Iterator[str]:
    """Every string value under one of ``keys`` anywhere in a JSON document."""
    if isinstance(data, dict):
        for k, v in data.items():
            if k in keys and isinstance(v, str):
                yield v
            else:
                yield from _values_of(v, keys)
    elif isinstance(data, list):
        for v in data:
            yield from _values_of(v, keys)


_RECORD_KEYS = frozenset({"record"})
_HOUSEHOLD_NO_KEYS = frozenset({"household_no", "source_household_no"})


def read_ahead_identity(s: Session, events: Sequence[CloudEvent],
                        payloads: Sequence[tuple[CloudEvent, BaseModel]] = ()) -> None:
    """Stage 1, once per batch: the person records, persons and households the batch may touch, and the
    candidates of the person records in the (event, payload) pairs, read in set queries."""
    records = [r for ev in events for r in _values_of(ev.data, _RECORD_KEYS)]
    nos = [n for ev in events for n in _values_of(ev.data, _HOUSEHOLD_NO_KEYS)]
    features: list[Features] = []
    residents: list[Features] = []
    for _, payload in payloads:
        if isinstance(payload, ResidentObservedV1):
            residents.append(features_for(s, payload))
        elif isinstance(payload, CaseV1):
            features += [features_for(s, p) for p in (payload.subject, *(m.person for m in payload.household_members),
                                                      *(r.person for r in payload.related_persons))]
        elif isinstance(payload, ReferralRequestedV1):
            features.append(features_for(s, payload.subject))
        elif isinstance(payload, PersonObservedV1):
            features.append(features_for(s, payload.person))
    observations = [ev.id for ev, p in payloads if isinstance(p, ResidentObservedV1)]
    IdentityService(s).read_ahead(records, nos, features, observations, residents)


def read_ahead_household(s: Session, events: Sequence[CloudEvent]) -> None:
    """Stage 2, once per batch: the batch's cases, its records' attributions and persons, and which of its
    persons have cases, read in set queries."""
    prefetch(s, CaseState, [c for ev in events if isinstance(c := ev.data.get("case"), str)])
    rows = prefetch(s, PersonRecordRow, [ev.sourcerecord for ev in events])
    persons = sorted({*(r.person_id for r in rows), *(ev.person for ev in events if ev.person)})
    prefetch(s, Person, persons)
    with_cases: set[str | None] = set()
    for chunk in _chunks(persons):
        with_cases.update(s.scalars(select(CaseState.person_id).where(CaseState.person_id.in_(chunk)).distinct()))
    s.info[_WITH_CASES] = (set(persons), with_cases)


_WITH_CASES = "tsunagu_with_cases"


def may_have_cases(s: Session, person: str) -> bool:
    """False only for a person the read-ahead found without cases and who got none since in this batch."""
    known = s.info.get(_WITH_CASES)
    return known is None or person not in known[0] or person in known[1]


def has_cases(s: Session, person: str | None) -> None:
    """Note that a case of this batch now belongs to ``person`` (``may_have_cases``)."""
    known = s.info.get(_WITH_CASES)
    if known is not None:
        known[1].add(person)


# --------------------------------------------------------------------------- consent gate
def subject_keys(s: Session, person: str | None) -> tuple[set[str], set[str]]:
    """The resident numbers and record keys under which consents for this hub person may be filed."""
    if person is None:
        return set(), set()

    resident_nos: set[str] = set()
    records: set[str] = set()
    p = s.get(Person, person)
    if p is not None and p.resident_no:
        resident_nos.add(p.resident_no)
        records.add(f"registry:{p.resident_no}")
    for rec, no in s.execute(
        select(PersonRecordRow.record, PersonRecordRow.resident_no).where(PersonRecordRow.person_id == person)
    ):
        records.add(rec)
        if no:
            resident_nos.add(no)
    return resident_nos, records


#: how long an emergency override (個人情報保護法 第69条第2項第4号, 虐待防止) opens the emergency route:
#: from its ``at`` for 72 hours, judged at the time of the decision. A longer need is a new override,
#: with its own reason and user in the record.
EMERGENCY_WINDOW = timedelta(hours=72)


def decide_for(s: Session, ev: CloudEvent, *, timers: StageTimers | None = None) -> Decision:
    """Ask the pure consent rules about one resolved event (fail closed when anything is unknown).

    An emergency override counts only while the decision falls within ``EMERGENCY_WINDOW`` of it.
    """

    with timed(timers, "decide"):
        repo = ConsentRepository(s)
        gate: _Gate | None = s.info.get(_GATE)
        if gate is not None and ev.person in gate.keys and ev.sourcerecord in gate.sources:
            resident_nos, records = gate.keys[ev.person]
            consents = gate.versions_for(resident_nos, records | {ev.sourcerecord})
        else:
            resident_nos, records = subject_keys(s, ev.person)
            records.add(ev.sourcerecord)
            consents = repo.versions_for(resident_nos, records) if ev.person else []
        designations = repo.designations_for(ev.household) if ev.household and _any_rows(s, "designations") else []
        emergencies = repo.emergencies_for(ev.person) if ev.person and _any_rows(s, "emergency_overrides") else []
        inp = DecisionInput.of(ev)
        at = datetime.now(UTC)
        emergency = next((e for e in reversed(emergencies)
                          if e.covers(ev.person, ev.field) and e.at <= at < e.at + EMERGENCY_WINDOW), None)
        return decide(inp, consents, designations, at, emergency)


_GATE = "tsunagu_gate"


@dataclass(slots=True)
class _Gate:
    """What the gate read in this transaction: per person their subject keys; every consent version filed under
    a key it read (kept equal to the database: versions this batch stores are added by ``note_consent``), with
    an index per subject key; the source records it covers."""

    keys: dict[str, tuple[set[str], set[str]]] = field(default_factory=dict)
    versions: list[tuple[tuple[str, datetime, int], ConsentVersion]] = field(default_factory=list)
    ids: set[int] = field(default_factory=set)
    by_no: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    by_record: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    nos_read: set[str] = field(default_factory=set)
    records_read: set[str] = field(default_factory=set)
    sources: set[str] = field(default_factory=set)

    def add(self, row: ConsentVersionRow) -> None:
        if row.id in self.ids:
            return
        self.ids.add(row.id)
        self.versions.append(((row.consent_id, row.version, row.id), row.to_version()))
        if row.subject_resident_no:
            self.by_no[row.subject_resident_no].append(len(self.versions) - 1)
        if row.subject_record:
            self.by_record[row.subject_record].append(len(self.versions) - 1)

    def covers(self, row: ConsentVersionRow) -> bool:
        return row.subject_resident_no in self.nos_read or row.subject_record in self.records_read

    def versions_for(self, resident_nos: set[str], records: set[str]) -> list[ConsentVersion]:
        """``ConsentRepository.versions_for`` answered from memory, in its order."""
        hits = {i for n in resident_nos for i in self.by_no.get(n, ())}
        hits.update(i for r in records for i in self.by_record.get(r, ()))
        return [v for _, v in sorted((self.versions[i] for i in hits), key=lambda kv: kv[0])]


def read_ahead_gate(s: Session, events: Sequence[CloudEvent]) -> None:
    """Stage 2, once per batch: every subject key of the batch's persons and every consent version filed under
    them, in set queries. ``decide_for`` answers from it until ``forget_gate`` (an identity change may follow)."""
    forget_gate(s)
    ensure_gate(s, events)


def ensure_gate(s: Session, events: Sequence[CloudEvent]) -> None:
    """Have the gate cover these events: reads (in set queries) only the persons, subject keys and source records
    it has not read yet in this transaction."""
    gate: _Gate | None = s.info.get(_GATE)
    if gate is None:
        gate = _Gate()
    todo = [ev for ev in events if ev.person and (ev.person not in gate.keys or ev.sourcerecord not in gate.sources)]
    if not todo:
        return
    persons = sorted({ev.person for ev in todo if ev.person and ev.person not in gate.keys})
    keys: dict[str, tuple[set[str], set[str]]] = {p: (set(), set()) for p in persons}
    for chunk in _chunks(persons):
        for pid, no in s.execute(select(Person.id, Person.resident_no).where(Person.id.in_(chunk))):
            if no:
                keys[pid][0].add(no)
                keys[pid][1].add(f"registry:{no}")
        for rec, no, pid in s.execute(select(PersonRecordRow.record, PersonRecordRow.resident_no,
                                             PersonRecordRow.person_id).where(PersonRecordRow.person_id.in_(chunk))):
            keys[pid][1].add(rec)
            if no:
                keys[pid][0].add(no)
    gate.keys.update(keys)
    sources = {ev.sourcerecord for ev in todo}
    gate.sources |= sources
    nos = sorted({n for ns, _ in keys.values() for n in ns} - gate.nos_read)
    records = sorted(({r for _, rs in keys.values() for r in rs} | sources) - gate.records_read)
    rows: dict[int, ConsentVersionRow] = {}
    for chunk in _chunks(nos):
        rows.update((r.id, r) for r in s.scalars(select(ConsentVersionRow).where(
            ConsentVersionRow.subject_resident_no.in_(chunk))))
    for chunk in _chunks(records):
        rows.update((r.id, r) for r in s.scalars(select(ConsentVersionRow).where(
            ConsentVersionRow.subject_record.in_(chunk))))
    gate.nos_read.update(nos)
    gate.records_read.update(records)
    for row in rows.values():
        gate.add(row)
    s.info[_GATE] = gate


def note_consent(s: Session, consent: ConsentV1) -> None:
    """A consent version was just stored: the gate, if it read the version's subject key, gets it too."""
    gate: _Gate | None = s.info.get(_GATE)
    if gate is None:
        return
    v = ConsentVersion.from_event(consent)
    row = s.scalar(select(ConsentVersionRow).where(
        ConsentVersionRow.consent_id == v.consent_id, ConsentVersionRow.version == v.version,
        ConsentVersionRow.digest == v.digest))
    if row is None:
        forget_gate(s)  # cannot tell what was stored: decide from the database again
    elif gate.covers(row):
        gate.add(row)


def has_gate(s: Session) -> bool:
    return _GATE in s.info


def forget_gate(s: Session) -> None:
    s.info.pop(_GATE, None)


def _any_rows(s: Session, table: str) -> bool:
    """Whether a (usually empty) table has rows, remembered for the rest of the transaction."""
    cache: dict[str, bool] = s.info.setdefault("tsunagu_any_rows", {})
    if table not in cache:

        t = metadata.tables[table]
        cache[table] = s.execute(select(t.c[next(iter(t.c.keys()))]).limit(1)).first() is not None
    return cache[table]


def audit_many(s: Session, decisions: list[tuple[CloudEvent, Decision]], *,
               timers: StageTimers | None = None) -> None:
    """Append a batch's decisions to the chain in one go (one head lock per batch), in order."""

    with timed(timers, "audit"):
        append_audit(s, [AuditInput.of(DecisionInput.of(ev), d, d.at or datetime.now(UTC)) for ev, d in decisions])


def store_consent(s: Session, ev: CloudEvent, consent: ConsentV1) -> bool:
    """Keep the version (False: already kept) and tell the consent gate about it."""
    stored = ConsentRepository(s).add_version(consent, recorded_at=ev.time)
    if stored:
        note_consent(s, consent)
    return stored


# --------------------------------------------------------------------------- alerts
def household_snapshot(s: Session, household: str) -> Any:
    """Members (registry relations, 同居家族 links and notes) and cases of one household."""
    return household_snapshots(s, [household])[household]


def household_snapshots(s: Session, households: Sequence[str]) -> dict[str, HouseholdSnapshot]:
    """The snapshots of several households, read in set queries (IN lists of 500), each built as
    ``household_snapshot`` builds one: members and their stays, relations over time, cases, links."""
    hs = sorted(set(households))
    current: dict[str, list[str]] = defaultdict(list)
    for chunk in _chunks(hs):
        for pid, hid in s.execute(select(Person.id, Person.household_id).where(
                Person.household_id.in_(chunk), Person.merged_into.is_(None))):
            current[hid].append(pid)  # type: ignore[index]
    seen_in = persons_seen_in_many(s, hs)
    candidates = {h: set(current[h]) | seen_in.get(h, set()) for h in hs}
    observations = observations_of(s, {p for c in candidates.values() for p in c})
    intervals = {pid: intervals_from(obs) for pid, obs in observations.items()}
    spans = {h: spans_from(h, {p: intervals[p] for p in sorted(candidates[h]) if p in intervals}) for h in hs}
    ids = {h: {p for p in current[h] if p not in spans[h].known} | set(spans[h].member) for h in hs}
    all_ids = sorted({p for i in ids.values() for p in i})
    residents: dict[str, Resident] = {}
    records: list[tuple[str, str, date | None]] = []
    for chunk in _chunks(all_ids):
        residents.update((r.person_id, r) for r in s.scalars(select(Resident).where(Resident.person_id.in_(chunk))))
        records += [(rec, pid, bd) for rec, pid, bd in s.execute(
            select(PersonRecordRow.record, PersonRecordRow.person_id, PersonRecordRow.birth_date)
            .where(PersonRecordRow.person_id.in_(chunk)))]
    cases: dict[str, list[Any]] = defaultdict(list)
    shared: dict[str, set[str]] = defaultdict(set)
    for chunk in _chunks(hs):
        for c in s.execute(select(*_CASE_COLUMNS).where(CaseState.household_id.in_(chunk))):
            cases[c.household_id].append(c)
        for rec, hid in s.execute(select(CaseEvent.record, CaseEvent.household_id).where(
                CaseEvent.household_id.in_(chunk), CaseEvent.team_published.is_(True))):
            shared[hid].add(rec)  # type: ignore[index]
    departed = {h: sorted(pid for pid, m in spans[h].member.items() if m.get("member_until") is not None) for h in hs}
    cases_of: dict[str, list[Any]] = defaultdict(list)
    for chunk in _chunks(sorted({p for d in departed.values() for p in d})):
        for c in s.execute(select(*_CASE_COLUMNS).where(CaseState.person_id.in_(chunk))):
            cases_of[c.person_id].append(c)
    out: dict[str, HouseholdSnapshot] = {}
    for h in hs:
        own = ids[h]
        birth: dict[str, date | None] = {pid: (residents[pid].birth_date if pid in residents else None)
                                         for pid in own}
        record_person: dict[str, str] = {}
        for rec, pid, bd in records:
            if pid not in own:
                continue
            record_person[rec] = pid
            if birth.get(pid) is None and bd is not None:
                birth[pid] = bd
        h_cases = list(cases[h])
        if departed[h]:  # cases of members who left, as long as they were members
            seen = {c.case for c in h_cases}
            h_cases += [c for pid in departed[h] for c in cases_of[pid] if c.case not in seen]
        slices = slices_from(o for pid in sorted(spans[h].member) for o in observations.get(pid, ())
                             if o.household_id == h)
        out[h] = _snapshot(h, own, birth, {p: r for p, r in residents.items() if p in own}, record_person,
                           h_cases, shared[h], spans[h].member, slices)
    return out


#: what a snapshot reads of a case (rows, not ORM objects: the batch's changes are flushed before the read)
_CASE_COLUMNS = (CaseState.case, CaseState.record, CaseState.person_id, CaseState.household_id, CaseState.field,
                 CaseState.opened_on, CaseState.closed_on, CaseState.topics, CaseState.members)
_FIELDS = {f.value: f for f in Field}
_TOPICS = {t.value: t for t in Topic}


def _snapshot(household: str, ids: set[str], birth: dict[str, date | None], residents: dict[str, Resident],
              record_person: dict[str, str], cases: list[Any], shared: set[str],
              member: dict[str, dict[str, Any]], slices: list[list[tuple[str, str | None]]]) -> HouseholdSnapshot:
    """One household's snapshot from what ``household_snapshots`` read (pure)."""
    notes: dict[str, set[MemberNote]] = defaultdict(set)
    links: list[tuple[str, str, Relation | None]] = []
    for c in cases:
        for rec, info in (c.members or {}).items():
            who = record_person.get(rec)
            if who is None or c.person_id is None:
                continue
            rel = info.get("relation")
            links.append((c.person_id, who, Relation(rel) if isinstance(rel, str) else None))
            raw_notes = info.get("notes")
            if isinstance(raw_notes, list):
                notes[who].update(MemberNote(n) for n in raw_notes if isinstance(n, str))
    registry_rel = [(pid, _relation(r.relation)) for pid, r in residents.items()]
    child_of = derive_child_of(registry_rel, links)
    for then in slices:  # 続柄 as they stood over time
        for pid, parents in derive_child_of([(p, _relation(r)) for p, r in then]).items():
            child_of[pid] = child_of.get(pid, frozenset()) | parents
    members = tuple(
        Member(person=pid, birth_date=birth.get(pid),
               relation=_relation(residents[pid].relation) if pid in residents else None,
               relation_source="registry" if pid in residents else None,
               notes=frozenset(notes.get(pid, set())), child_of=child_of.get(pid, frozenset()),
               **member.get(pid, {}))
        for pid in sorted(ids)
    )
    facts = tuple(
        CaseFact(record=c.record, case=c.case, person=c.person_id, field=_FIELDS.get(c.field) or Field(c.field),
                 opened_on=c.opened_on, closed_on=c.closed_on,
                 topics=frozenset(_TOPICS.get(t) or Topic(t) for t in c.topics or []),
                 shareable=c.record in shared)
        for c in cases if c.person_id is not None
    )
    return HouseholdSnapshot(household=household, members=members, cases=facts)


def _chunks(items: list[str], size: int = 500) -> list[list[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _relation(value: str | None) -> Relation | None:
    if not value:
        return None
    try:
        return Relation(value)
    except ValueError:
        return RELATION_LABELS.get(value)


def evaluate_alerts(s: Session, household: str, today: date, settings: Any, *,
                    timers: StageTimers | None = None) -> list[bytes]:
    """Re-evaluate the household's timeline; publish raised/updated alerts (never lowers one)."""
    return [value for _, value in evaluate_alerts_many(s, [household], today, settings, timers=timers)]


def evaluate_alerts_many(s: Session, households: Sequence[str], today: date, settings: Any, *,
                         timers: StageTimers | None = None) -> list[tuple[str, bytes]]:
    """``evaluate_alerts`` for several households, alert states read in set queries: (household, event) in order."""
    with timed(timers, "alerts"):
        snapshots = household_snapshots(s, households)
        with_cases = [h for h in households if snapshots[h].cases]
        existing_all: dict[str, dict[str, AlertState]] = defaultdict(dict)
        for chunk in _chunks(with_cases):
            for a in s.scalars(select(AlertState).where(AlertState.household_id.in_(chunk))):
                existing_all[a.household_id][a.kind] = a
        return [(h, value) for h in with_cases
                for value in _evaluate_one(s, h, snapshots[h], existing_all[h], today, settings)]


def _evaluate_one(s: Session, household: str, snapshot: HouseholdSnapshot, existing: dict[str, AlertState],
                  today: date, settings: Any) -> list[bytes]:
    if not existing and not may_hold(snapshot, settings or DEFAULT_SETTINGS):
        return []  # no alert yet and none can hold: nothing to raise, reopen or end
    found = evaluate(snapshot, today, settings or DEFAULT_SETTINGS)
    previous: dict[AlertKind, tuple[Sequence[Field], Sequence[str]]] = {
        k: ([Field(f) for f in a.fields], list(a.records)) for k, a in existing.items() if k in KINDS
    }
    out: list[bytes] = []
    reopened = _reopen_alerts(household, found, existing, snapshot, today, settings or DEFAULT_SETTINGS)
    out += reopened.values()
    closed = {k for k, a in existing.items() if a.status == "closed"} | set(reopened)
    for action, finding in diff_alerts(previous, found):
        if finding.kind in closed:
            continue  # the hub ended it (a member left); widening a closed alert reopens nothing
        alert_id = stable_event_id("alert", household, finding.kind)
        row = existing.get(finding.kind)
        at = datetime.now(UTC)
        if row is None:
            row = AlertState(alert_id=alert_id, household_id=household, kind=finding.kind, status="open",
                             raised_at=at, fields=[], records=[])
            s.add(row)
        row.fields = [f.value for f in finding.fields]
        row.records = list(finding.records)
        row.updated_at = at
        shown = view(finding, snapshot, today)
        data = AlertV1(alert=alert_id, kind=finding.kind, household=household, fields=list(finding.fields),
                       records=list(finding.records), status="open", shareable=shown["shareable"],
                       members=shown["members"], age_bands=shown["age_bands"])
        ev = CloudEvent(
            id=stable_event_id("alert", household, finding.kind, action, *finding.fields, *finding.records),
            source="urn:tsunagu:hub:alerts",
            type=f"jp.tsunagu.alert.{action}.v1",
            time=datetime.combine(finding.since, datetime.min.time(), JST),
            sourcerecord=finding.records[0] if finding.records else household,
            household=household,
            data=data.model_dump(mode="json"),
        )
        out.append(ev.to_json_bytes())
    for kind, (day, reason, _person) in sorted(ended(snapshot, found, today, settings or DEFAULT_SETTINGS).items()):
        out += _end_alert(s, household, found[kind], snapshot, today, day, reason)
    return out


def _reopen_alerts(household: str, found: dict[AlertKind, Any], existing: dict[str, AlertState],
                   snapshot: HouseholdSnapshot, today: date, settings: Any) -> dict[str, bytes]:
    """An alert the hub ended whose condition holds again later (a member arrived, a new case) is
    raised anew from that day, so an ended alert never hides a new one. Kind → the raised event."""
    out: dict[str, bytes] = {}
    for kind, row in sorted(existing.items()):
        if row.status != "closed" or row.closed_on is None or kind not in found:
            continue
        day = holds_again(snapshot, found[kind].kind, row.closed_on, today, settings)
        if day is None:
            continue
        finding = replace(found[kind], since=day)
        row.status, row.closed_on, row.close_reason = "open", None, None
        row.fields, row.records = [f.value for f in finding.fields], list(finding.records)
        row.updated_at = datetime.now(UTC)
        shown = view(finding, snapshot, today)
        data = AlertV1(alert=row.alert_id, kind=finding.kind, household=household, fields=list(finding.fields),
                       records=list(finding.records) if shown["shareable"] else [], status="open",
                       shareable=shown["shareable"], members=shown["members"], age_bands=shown["age_bands"])
        out[kind] = (CloudEvent(
            id=stable_event_id("alert", household, kind, "raised_again", day.isoformat()),
            source="urn:tsunagu:hub:alerts", type="jp.tsunagu.alert.raised.v1",
            time=datetime.combine(day, datetime.min.time(), JST),
            sourcerecord=finding.records[0] if finding.records else household, household=household,
            data=data.model_dump(mode="json")).to_json_bytes())
    return out


#: 住民状態 of the member who left → the alert's close_reason
CLOSE_REASONS = {"deceased": "member_deceased", "moved_out": "member_moved_out", "removed": "member_removed"}


def _end_alert(s: Session, household: str, finding: Any, snapshot: HouseholdSnapshot, today: date,
               day: date, reason: str) -> list[bytes]:
    """Close the alert of ``finding``'s kind on ``day``: a person it depended on left the household."""
    alert_id = stable_event_id("alert", household, finding.kind)
    row = s.scalar(select(AlertState).where(AlertState.household_id == household,
                                            AlertState.kind == finding.kind))
    if row is None or row.status == "closed":
        return []
    close_reason = CLOSE_REASONS.get(reason, "member_removed")
    row.status, row.closed_on, row.close_reason = "closed", day, close_reason
    row.updated_at = datetime.now(UTC)
    shown = view(finding, snapshot, today)
    data = AlertV1(alert=alert_id, kind=finding.kind, household=household, fields=list(finding.fields),
                   records=list(finding.records) if shown["shareable"] else [], status="closed",
                   shareable=shown["shareable"], members=shown["members"], age_bands=shown["age_bands"],
                   closed_on=day, close_reason=close_reason)
    ev = CloudEvent(
        id=stable_event_id("alert", household, finding.kind, "ended", day.isoformat()),
        source="urn:tsunagu:hub:alerts",
        type="jp.tsunagu.alert.ended.v1",
        time=datetime.combine(day, datetime.min.time(), JST),
        sourcerecord=finding.records[0] if finding.records else household,
        household=household,
        data=data.model_dump(mode="json"),
    )
    return [ev.to_json_bytes()]


def payload_model(ev: CloudEvent) -> BaseModel:

    return parse_payload(ev.type, ev.data)
