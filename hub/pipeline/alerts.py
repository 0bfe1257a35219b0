"""Cross-field alerts (../shared/domain/alerts.md) as pure functions of a household snapshot.

No I/O here: the caller builds a :class:`HouseholdSnapshot` (members with their relations,
cases as intervals) and asks :func:`evaluate` what holds up to a day. Each rule is a tiny
function ``(snapshot, on, settings) -> Finding | None`` that looks at one day only.

Order independence. Events arrive late and out of order, so "when its condition first holds"
is read on the *timeline of the facts*, never on the order of arrival: :func:`evaluate` checks
the rules at every day on which the answer can change (a case opening or closing, a member
crossing an age threshold) and folds the findings of all those days into one per kind:

- ``since`` is the first day the condition held;
- ``fields``, ``records`` and ``cases`` are the union over every day it held.

The union (rather than "what held on the first day") is what makes the result monotone in the
set of cases: a case that arrives late can only add to an alert, never take from it. So an
alert built incrementally (evaluate after each arrival, :func:`diff_alerts`, keep what was
published) ends exactly where :func:`evaluate` on the whole history ends, in any arrival order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Literal

from schemas.codes import Field, MemberNote, Relation, Topic
from schemas.events import age_band, age_on

AlertKind = Literal["multi_field", "8050", "double_care", "young_carer"]
KINDS: tuple[AlertKind, ...] = ("multi_field", "8050", "double_care", "young_carer")
RelationSource = Literal["registry", "houkatsu", "kodomo"]
Action = Literal["raised", "updated"]

#: 同居家族 備考 words that make a 40–64 child count for 8050 without a case of their own
NOTES_8050 = frozenset({MemberNote.HIKIKOMORI, MemberNote.UNEMPLOYED, MemberNote.DISABILITY})
#: the fields of the child's own case in 8050
FIELDS_8050_CHILD = frozenset({Field.LIVELIHOOD, Field.DISABILITY})
#: the fields of the cared-for member in young_carer
FIELDS_CARED_FOR = frozenset({Field.DISABILITY, Field.ELDERLY})


# --------------------------------------------------------------------------- snapshot types
@dataclass(frozen=True)
class Member:
    """A member of the household: ``child_of`` holds the person ids this member is a child of."""

    person: str
    birth_date: date | None = None
    relation: Relation | None = None
    relation_source: RelationSource | None = None
    notes: frozenset[MemberNote] = frozenset()
    child_of: frozenset[str] = frozenset()
    #: the registry's membership interval [member_from, member_until); None: open on that side
    member_from: date | None = None
    member_until: date | None = None
    #: 住民状態 that ended the membership (moved_out, deceased, removed), if it ended
    left_reason: str | None = None

    def age(self, on: date) -> int | None:
        return None if self.birth_date is None else age_on(self.birth_date, on)

    def present_on(self, on: date) -> bool:
        """A member on ``on``: arrived by then and not yet left (死亡, 転出, 消除)."""
        return (self.member_from is None or self.member_from <= on) and (
            self.member_until is None or on < self.member_until)


@dataclass(frozen=True)
class CaseFact:
    """One case as an interval: active from ``opened_on`` until the day before ``closed_on``."""

    record: str  # the person's record key in the source (what alerts name)
    case: str  # the case's own key
    person: str  # hub person id
    field: Field
    opened_on: date
    closed_on: date | None = None  # 終結 (or 中断 for livelihood) date
    topics: frozenset[Topic] = frozenset()
    shareable: bool = False  # fail closed: only a record known to flow to the team is shareable

    def active_on(self, on: date) -> bool:
        """alerts.md: active from its intake date, no longer active from its closing date."""
        return self.opened_on <= on and (self.closed_on is None or on < self.closed_on)


@dataclass(frozen=True)
class HouseholdSnapshot:
    household: str
    members: tuple[Member, ...] = ()
    cases: tuple[CaseFact, ...] = ()


@dataclass(frozen=True)
class AlertSettings:
    """The thresholds of alerts.md; every one is a setting (小牧市 uses 3 fields for multi_field)."""

    multi_field_min_fields: int = 2
    elder_min_age: int = 70
    child_min_age: int = 40
    child_max_age: int = 64
    young_carer_min_age: int = 10
    young_carer_max_age: int = 17
    adult_min_age: int = 18
    adult_max_age: int = 64

    def __post_init__(self) -> None:
        if not 1 <= self.multi_field_min_fields <= len(Field):
            raise ValueError("multi_field_min_fields must be between 1 and the number of fields")
        for low, high in (
            (self.child_min_age, self.child_max_age),
            (self.young_carer_min_age, self.young_carer_max_age),
            (self.adult_min_age, self.adult_max_age),
        ):
            if not 0 <= low <= high:
                raise ValueError("an age range must have 0 <= min <= max")

    def age_thresholds(self) -> frozenset[int]:
        """The ages at which some rule's answer can change (a range's max+1 is where it is left)."""
        return frozenset(
            {
                self.elder_min_age,
                self.child_min_age,
                self.child_max_age + 1,
                self.young_carer_min_age,
                self.young_carer_max_age + 1,
                self.adult_min_age,
                self.adult_max_age + 1,
            }
        )


DEFAULT_SETTINGS = AlertSettings()


@dataclass(frozen=True)
class Finding:
    """What a rule found: fields, record keys and case keys sorted; ``since`` the first day it held."""

    kind: AlertKind
    fields: tuple[Field, ...]
    records: tuple[str, ...]
    cases: tuple[str, ...]
    since: date

    def widened(self, other: Finding) -> Finding:
        """This finding with ``other``'s fields, records and cases added; ``since`` the earlier day."""
        return Finding(
            kind=self.kind,
            fields=tuple(sorted(set(self.fields) | set(other.fields))),
            records=tuple(sorted(set(self.records) | set(other.records))),
            cases=tuple(sorted(set(self.cases) | set(other.cases))),
            since=min(self.since, other.since),
        )


def _finding(kind: AlertKind, cases: Iterable[CaseFact], on: date) -> Finding:
    facts = list(cases)
    return Finding(
        kind=kind,
        fields=tuple(sorted({c.field for c in facts})),
        records=tuple(sorted({c.record for c in facts})),
        cases=tuple(sorted({c.case for c in facts})),
        since=on,
    )


# --------------------------------------------------------------------------- child of
def derive_child_of(
    registry_members: Iterable[tuple[str, Relation | None]],
    houkatsu_links: Iterable[tuple[str, str, Relation | None]] = (),
) -> dict[str, frozenset[str]]:
    """Who is a child of whom (alerts.md "child of"), as person id → the person ids of the parents.

    ``registry_members``: ``(person, 続柄 to the 世帯主)`` of ONE registry household. A ``子`` is the
    child of the 世帯主 and of the 世帯主's spouse (妻, 夫); the 世帯主 is the child of a 父 or 母.
    ``houkatsu_links``: ``(subject person, 同居家族 person, 続柄 to the subject)``; an entry whose
    続柄 is 長男, 長女, 次男, 次女, 三男, 三女, 子, 息子 or 娘 is the child of the subject.
    """
    members = list(registry_members)
    heads = {p for p, r in members if r is Relation.HEAD}
    spouses = {p for p, r in members if r in (Relation.WIFE, Relation.HUSBAND)}
    parents_of_head = {p for p, r in members if r in (Relation.FATHER, Relation.MOTHER)}
    out: dict[str, set[str]] = {}
    for person, relation in members:
        if relation is Relation.CHILD:
            out.setdefault(person, set()).update(heads | spouses)
        elif relation is Relation.HEAD:
            out.setdefault(person, set()).update(parents_of_head)
    for subject, member, relation in houkatsu_links:
        if relation is not None and relation.is_child_of_subject:
            out.setdefault(member, set()).add(subject)
    return {p: frozenset(parents - {p}) for p, parents in out.items() if parents - {p}}


# --------------------------------------------------------------------------- rules (one day each)
def _absent(snapshot: HouseholdSnapshot, on: date) -> set[str]:
    """Persons of the snapshot who are not members on ``on`` (not yet arrived, or left)."""
    return {m.person for m in snapshot.members if not m.present_on(on)}


def _on_day(snapshot: HouseholdSnapshot, on: date) -> HouseholdSnapshot:
    """The household as it stood on ``on``: its members then, and only their cases."""
    absent = _absent(snapshot, on)
    if not absent:
        return snapshot
    return replace(snapshot, members=tuple(m for m in snapshot.members if m.person not in absent),
                   cases=tuple(c for c in snapshot.cases if c.person not in absent))


def _active(snapshot: HouseholdSnapshot, on: date) -> list[CaseFact]:
    return [c for c in snapshot.cases if c.active_on(on)]


def _aged(member: Member | None, on: date, low: int, high: int | None = None) -> bool:
    age = None if member is None else member.age(on)
    return age is not None and low <= age and (high is None or age <= high)


def multi_field(snapshot: HouseholdSnapshot, on: date, settings: AlertSettings = DEFAULT_SETTINGS) -> Finding | None:
    """Active cases in ``multi_field_min_fields`` or more different fields."""
    snapshot = _on_day(snapshot, on)
    active = _active(snapshot, on)
    if len({c.field for c in active}) < settings.multi_field_min_fields:
        return None
    return _finding("multi_field", active, on)


def rule_8050(snapshot: HouseholdSnapshot, on: date, settings: AlertSettings = DEFAULT_SETTINGS) -> Finding | None:
    """An active elderly case of a member aged 70+, and a child of theirs aged 40–64 with an active
    livelihood or disability case, or noted ひきこもり / 無職 / 障害 in 同居家族."""
    snapshot = _on_day(snapshot, on)
    active = _active(snapshot, on)
    elders: dict[str, list[CaseFact]] = {}
    members = {m.person: m for m in snapshot.members}
    for c in active:
        if c.field is Field.ELDERLY and _aged(members.get(c.person), on, settings.elder_min_age):
            elders.setdefault(c.person, []).append(c)
    if not elders:
        return None
    contributing: list[CaseFact] = []
    for child in snapshot.members:
        parents = child.child_of.intersection(elders)
        if not parents or not _aged(child, on, settings.child_min_age, settings.child_max_age):
            continue
        own = [c for c in active if c.person == child.person and c.field in FIELDS_8050_CHILD]
        if own or child.notes & NOTES_8050:
            contributing += own
            for parent in parents:
                contributing += elders[parent]
    return _finding("8050", contributing, on) if contributing else None


def double_care(snapshot: HouseholdSnapshot, on: date, settings: AlertSettings = DEFAULT_SETTINGS) -> Finding | None:
    """An active child case and an active elderly case, at the same time."""
    snapshot = _on_day(snapshot, on)
    active = [c for c in _active(snapshot, on) if c.field in (Field.CHILD, Field.ELDERLY)]
    if {c.field for c in active} != {Field.CHILD, Field.ELDERLY}:
        return None
    return _finding("double_care", active, on)


def young_carer(snapshot: HouseholdSnapshot, on: date, settings: AlertSettings = DEFAULT_SETTINGS) -> Finding | None:
    """A 10–17 member with an active child case that lists ヤングケアラー; or a 10–17 member with an
    active child case while another member has an active disability or elderly case and every other
    member aged 18–64 is one of those cared-for members (no healthy adult shares the care)."""
    snapshot = _on_day(snapshot, on)
    active = _active(snapshot, on)
    cared_for: dict[str, list[CaseFact]] = {}
    for c in active:
        if c.field in FIELDS_CARED_FOR:
            cared_for.setdefault(c.person, []).append(c)
    contributing: list[CaseFact] = []
    for young in snapshot.members:
        if not _aged(young, on, settings.young_carer_min_age, settings.young_carer_max_age):
            continue
        child_cases = [c for c in active if c.person == young.person and c.field is Field.CHILD]
        if not child_cases:
            continue
        contributing += [c for c in child_cases if Topic.YOUNG_CARER in c.topics]  # branch 1
        others = {p: cs for p, cs in cared_for.items() if p != young.person}
        adults = [
            m
            for m in snapshot.members
            if m.person != young.person and _aged(m, on, settings.adult_min_age, settings.adult_max_age)
        ]
        if others and all(m.person in others for m in adults):  # branch 2
            contributing += child_cases
            for cs in others.values():
                contributing += cs
    return _finding("young_carer", contributing, on) if contributing else None


Rule = Callable[[HouseholdSnapshot, date, AlertSettings], Finding | None]

RULES: dict[AlertKind, Rule] = {
    "multi_field": multi_field,
    "8050": rule_8050,
    "double_care": double_care,
    "young_carer": young_carer,
}


def may_hold(snapshot: HouseholdSnapshot, settings: AlertSettings = DEFAULT_SETTINGS) -> bool:
    """False when no rule can hold on any day: a necessary condition of each rule (its fields; 8050 also a
    member who is someone's child), read off the snapshot without walking the timeline."""
    fields = {c.field for c in snapshot.cases}
    return (len(fields) >= settings.multi_field_min_fields
            or Field.CHILD in fields  # young_carer (and double_care) need a child case
            or (Field.ELDERLY in fields and any(m.child_of for m in snapshot.members)))  # 8050


# --------------------------------------------------------------------------- the timeline
def turns(birth: date, age: int) -> date:
    """The first day on which a person born on ``birth`` is ``age`` full years old (29 Feb → 1 Mar)."""
    year = birth.year + age
    try:
        return birth.replace(year=year)
    except ValueError:  # born 29 February, a common year: age_on counts the birthday from 1 March
        return date(year, 3, 1)


def moments(snapshot: HouseholdSnapshot, until: date, settings: AlertSettings = DEFAULT_SETTINGS) -> list[date]:
    """Every day up to ``until`` on which some rule's answer can change, sorted and deduplicated.

    Case boundaries (opened_on, closed_on) and the days members cross an age threshold, from the
    first intake on: before it no case is active and no rule holds; between two consecutive
    moments nothing a rule reads changes.
    """
    if not snapshot.cases:
        return []
    start = min(c.opened_on for c in snapshot.cases)
    days: set[date] = set()
    for c in snapshot.cases:
        days.add(c.opened_on)
        if c.closed_on is not None:
            days.add(c.closed_on)
    for m in snapshot.members:
        days.update(d for d in (m.member_from, m.member_until) if d is not None)
    thresholds = settings.age_thresholds()
    for m in snapshot.members:
        if m.birth_date is not None:
            for age in thresholds:
                if age > 0:
                    days.add(turns(m.birth_date, age))
    return sorted(d for d in days if start <= d <= until)


def evaluate(
    snapshot: HouseholdSnapshot, until: date, settings: AlertSettings = DEFAULT_SETTINGS
) -> dict[AlertKind, Finding]:
    """Per kind, what held at any moment up to ``until``: the first day, and the union of what held.

    A function of the facts alone (not of their arrival order), and monotone in the cases.
    """
    found: dict[AlertKind, Finding] = {}
    for day in moments(snapshot, until, settings):
        for kind, rule in RULES.items():
            f = rule(snapshot, day, settings)
            if f is not None:
                found[kind] = found[kind].widened(f) if kind in found else f
    return found


Ending = tuple[date, str, str]


def ended(snapshot: HouseholdSnapshot, found: Mapping[AlertKind, Finding], until: date,
          settings: AlertSettings = DEFAULT_SETTINGS) -> dict[AlertKind, Ending]:
    """Per kind found, whether it ENDED because a person it depended on left the household:
    ``(the day, the 住民状態 that ended the membership, that person)``.

    A kind ends when it does not hold on ``until`` and the first day after its last holding moment is
    a day on which a member left (死亡, 転出, 消除) — the rule held the day before and not on that day.
    An alert whose cases closed stays open (a coordinator acknowledges it); only a departure ends it.
    """
    out: dict[AlertKind, Ending] = {}
    leaving = sorted((m.member_until, m.left_reason, m.person) for m in snapshot.members
                     if m.member_until is not None and m.left_reason and m.left_reason != "moved"
                     and m.member_until <= until)
    if not leaving:
        return out
    days = moments(snapshot, until, settings)
    for kind in found:
        rule = RULES[kind]
        held = [d for d in days if rule(snapshot, d, settings) is not None]
        if not held or rule(snapshot, until, settings) is not None:
            continue
        after = [d for d in days if d > held[-1]]
        if not after:
            continue
        stop = after[0]
        for day, reason, person in leaving:
            if day == stop and reason:
                out[kind] = (day, reason, person)
                break
    return out


def holds_again(snapshot: HouseholdSnapshot, kind: AlertKind, closed_on: date, until: date,
                settings: AlertSettings = DEFAULT_SETTINGS) -> date | None:
    """The first day from ``closed_on`` to ``until`` on which the rule of an ended alert holds again
    (someone arrived, a new case): the alert is raised anew from that day. None: it stays ended."""
    rule = RULES[kind]
    for day in moments(snapshot, until, settings):
        if day >= closed_on and rule(snapshot, day, settings) is not None:
            return day
    return None


def diff_alerts(
    previous: Mapping[AlertKind, tuple[Sequence[Field], Sequence[str]]],
    current: Mapping[AlertKind, Finding],
) -> list[tuple[Action, Finding]]:
    """What to publish: ``raised`` for a new kind, ``updated`` when fields or records grew.

    Never lowers: an updated finding carries the previous fields and records too, and a kind that
    no longer holds is left alone (an alert stays open until a coordinator acknowledges it).
    """
    out: list[tuple[Action, Finding]] = []
    for kind in sorted(current):
        now = current[kind]
        if kind not in previous:
            out.append(("raised", now))
            continue
        fields, records = previous[kind]
        if set(now.fields) <= set(fields) and set(now.records) <= set(records):
            continue
        merged = replace(
            now,
            fields=tuple(sorted(set(now.fields) | set(fields))),
            records=tuple(sorted(set(now.records) | set(records))),
        )
        out.append(("updated", merged))
    return out


# --------------------------------------------------------------------------- what an alert may show
def _band_key(band: str) -> tuple[int, str]:
    head = band.split("-")[0]
    return (int(head), band) if head.isdigit() else (10_000, band)


def view(finding: Finding, snapshot: HouseholdSnapshot, on: date) -> dict[str, Any]:
    """What the alert may show on ``on`` (alerts.md "What an alert may show").

    Always: ``kind``, ``household``, ``fields``, ``shareable``, ``members`` (how many) and
    ``age_bands``. Only when every contributing case may flow to the team (fail closed: a record
    or case the snapshot does not hold counts as not shareable) also ``persons`` (person ids),
    ``records`` (record keys) and ``cases``; otherwise it is the 支援会議 candidate form and
    ``records`` is empty. The keys other than ``persons`` and ``cases`` are those of AlertV1.
    """
    contributing = [c for c in snapshot.cases if c.case in set(finding.cases)]
    known_records = {c.record for c in contributing}
    shareable = (
        bool(contributing)
        and all(c.shareable for c in contributing)
        and set(finding.records) <= known_records
        and set(finding.cases) <= {c.case for c in contributing}
    )
    # the members during the alert: present at some day from its first day to ``on`` (not one who left
    # before it began or is yet to come)
    present = [m for m in snapshot.members if (m.member_from is None or m.member_from <= on)
               and (m.member_until is None or m.member_until > finding.since)]
    bands = sorted((age_band(m.birth_date, on) or "unknown" for m in present), key=_band_key)
    out: dict[str, Any] = {
        "kind": finding.kind,
        "household": snapshot.household,
        "fields": [str(f) for f in finding.fields],
        "shareable": shareable,
        "members": len(present),
        "age_bands": bands,
        "records": list(finding.records) if shareable else [],
    }
    if shareable:
        out["persons"] = sorted(m.person for m in present)
        out["cases"] = list(finding.cases)
    return out
