"""Who may see what of one household on a workspace screen: a pure function of the facts (no I/O).

The sharing rules (../shared/domain/sharing-rules.md) decide, per case event, per member and per
case, which of three forms a viewer gets:

- ``full`` — the team route (重層的支援会議, 社会福祉法 第106条の4): :func:`consent.decide.decide`
  finds a consent that covered the event at its source time, *and* that consent still covers it
  at view time: a withdrawal (or a later ``deny`` naming the field) hides what it covered from its
  effective date on. An emergency override (個人情報保護法 第69条第2項第4号) opens the person's
  named fields for its window (``hub.pipeline.adapters.EMERGENCY_WINDOW``) from the moment it was invoked.
- ``minimal`` — the 支援会議 route (第106条の6): the viewer sits on a 支援会議 designation active
  today for this household, and the item's field is among its member agencies. Only field, case
  status, dates, change kind and age band; never names, free text, 要配慮 details or person ids.
  The record key is added only for a viewer who works for the agency that holds the record, so
  that member can find its own client.
- nothing otherwise.

A designation is in force from its start until it is ended by decision or with the case (no case of
its member fields still open). Who sits on a 支援会議: the municipal multi-agency team (a coordinator
or admin with no agency) convenes every one of them; an agency's user sits on one whose member agencies name its field.
An agency's user who sits on no 支援会議 for the household sees nothing of it, and agency users
never get the full form here (their own system is where they see their own records in full).
Consent officers and ops have no household view (they work from /consents and /ops).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Literal

from consent.decide import decide
from consent.model import JST, ConsentVersion, DecisionInput, Designation, EmergencyOverride, require_aware
from hub.pipeline.adapters import EMERGENCY_WINDOW
from hub.pipeline.alerts import CaseFact, Finding, HouseholdSnapshot, Member
from hub.pipeline.alerts import view as alert_view
from schemas.codes import Field
from schemas.events import age_band

Form = Literal["full", "minimal"]
Change = Literal["opened", "updated", "closed", "referral"]

#: roles that may open a household page at all (ops and consent officers never do)
HOUSEHOLD_ROLES = frozenset({"coordinator", "admin"})


# --------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class Viewer:
    """Who looks: a username, a role and, for an agency's staff, the field code of that agency."""

    username: str
    role: str
    agency: Field | None = None

    @property
    def municipal_team(self) -> bool:
        return self.role in HOUSEHOLD_ROLES and self.agency is None


@dataclass(frozen=True)
class MemberFact:
    """A member of the household as the hub holds them (personal data)."""

    person: str
    name: str | None = None
    kana: str | None = None
    birth_date: date | None = None
    sex: str | None = None
    relation: str | None = None


@dataclass(frozen=True)
class CaseFactIn:
    """A case's newest state at its agency."""

    case: str
    record: str
    person: str | None
    field: Field
    status: str
    opened_on: date
    closed_on: date | None = None


@dataclass(frozen=True)
class EventFact:
    """One accepted case (or referral) event with the content a full view may show."""

    event_id: str
    source: str
    type: str
    time: datetime
    record: str
    person: str | None
    field: Field | None
    change: Change
    case: str | None = None
    status: str | None = None
    opened_on: date | None = None
    closed_on: date | None = None
    summary: str | None = None
    notes: tuple[str, ...] = ()
    disability_types: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    referral_to: str | None = None

    def __post_init__(self) -> None:
        require_aware(self.time, "time")


@dataclass(frozen=True)
class AlertFact:
    alert_id: str
    kind: str
    fields: tuple[Field, ...]
    records: tuple[str, ...]
    raised_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class HouseholdFacts:
    """Everything the hub holds about one household that a screen could show."""

    household: str
    members: tuple[MemberFact, ...] = ()
    cases: tuple[CaseFactIn, ...] = ()
    events: tuple[EventFact, ...] = ()
    #: person id → every consent version filed under that person's resident number or record keys
    consents: Mapping[str, tuple[ConsentVersion, ...]] = field(default_factory=dict)
    designations: tuple[Designation, ...] = ()
    emergencies: tuple[EmergencyOverride, ...] = ()
    alerts: tuple[AlertFact, ...] = ()


# --------------------------------------------------------------------------- outputs
@dataclass(frozen=True)
class MemberView:
    """A member: ``label`` always (世帯員1 …, oldest first); name and details only when ``named``."""

    label: str
    age_band: str | None
    named: bool
    name: str | None = None
    kana: str | None = None
    birth_date: date | None = None
    sex: str | None = None
    relation: str | None = None
    person: str | None = None


@dataclass(frozen=True)
class MinimalItem:
    """The 支援会議 form of one case or change: nothing here names, describes or identifies a person.

    ``record`` is set only for the viewer's own agency's records.
    """

    field: Field
    status: str | None
    change: Change | None
    on: date | None
    opened_on: date | None
    closed_on: date | None
    age_band: str | None
    record: str | None = None
    member: str | None = None  # the member's label (世帯員n), never a person id


@dataclass(frozen=True)
class FullItem:
    """The team form of one change: as the agency recorded it, with the basis it flows on."""

    event_id: str
    at: datetime
    field: Field | None
    change: Change
    record: str
    member: str  # the member's label
    name: str | None
    case: str | None
    status: str | None
    opened_on: date | None
    closed_on: date | None
    summary: str | None
    notes: tuple[str, ...]
    disability_types: tuple[str, ...]
    topics: tuple[str, ...]
    referral_to: str | None
    basis: str


@dataclass(frozen=True)
class TimelineItem:
    form: Form
    at: date  # Japan-time day of the change (minimal items carry no time of day)
    full: FullItem | None = None
    minimal: MinimalItem | None = None


@dataclass(frozen=True)
class CaseView:
    form: Form
    field: Field
    full: FullItem | None = None
    minimal: MinimalItem | None = None


@dataclass(frozen=True)
class AlertView:
    """An alert as alerts.md lets it show: kind, fields, member count and age bands; records when shareable."""

    alert_id: str
    kind: str
    fields: tuple[Field, ...]
    shareable: bool
    members: int
    age_bands: tuple[str, ...]
    records: tuple[str, ...]
    raised_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class HouseholdView:
    """What one viewer may see of one household today."""

    household: str
    allowed: bool
    route: Literal["team", "support_meeting", "alert_only", "none"]
    members: tuple[MemberView, ...] = ()
    member_count: int = 0
    timeline: tuple[TimelineItem, ...] = ()
    cases: tuple[CaseView, ...] = ()
    alerts: tuple[AlertView, ...] = ()
    #: fields of the household's cases that no consent in force covers (the way out of the minimal form)
    missing_consent_fields: tuple[Field, ...] = ()
    #: labels of members who have a case and no consent in force for some of its fields
    missing_consent_members: tuple[str, ...] = ()
    #: the 支援会議 designations active today that the viewer sits on
    meetings: tuple[Designation, ...] = ()
    #: the fields the viewer's 支援会議 membership opens (minimal form)
    meeting_fields: tuple[Field, ...] = ()

    def person_of(self, label: str) -> str | None:
        """The person id behind a named member's label (None for a masked one)."""
        return next((m.person for m in self.members if m.label == label and m.named), None)


# --------------------------------------------------------------------------- consent at view time
def _state_at(versions: Sequence[ConsentVersion], t: datetime) -> list[ConsentVersion]:
    """The versions in force at ``t`` (as consent.decide reads them): those of the latest version ≤ t."""
    latest = max((v.version for v in versions if v.version <= t), default=None)
    return [] if latest is None else [v for v in versions if v.version == latest]


def _covers(v: ConsentVersion, f: Field, t: datetime) -> bool:
    return (v.status == "active" and v.decision == "permit" and v.counts_for_team and f in v.fields
            and v.in_period(t))


def _denied_now(versions: Sequence[ConsentVersion], f: Field, now: datetime, t: datetime) -> bool:
    """A deny recorded by ``now`` that names ``f`` and whose period reaches the event's time ``t``."""
    return any(v.decision == "deny" and v.status == "active" and f in v.fields and v.version <= now
               and v.in_period(t) for v in versions)


def still_covered(consents: Sequence[ConsentVersion], consent_id: str, f: Field, t: datetime,
                  now: datetime) -> bool:
    """Whether consent ``consent_id``, as it stands at ``now``, still covers field ``f`` at event time ``t``.

    False once it was withdrawn (a later ``inactive`` / ``entered-in-error`` version), narrowed to
    other fields, or a ``deny`` naming the field was recorded: what it covered is hidden from then on.
    """
    versions = [v for v in consents if v.consent_id == consent_id]
    state = _state_at(versions, now)
    if not state or not all(_covers(v, f, t) for v in state):
        return False
    return not _denied_now(consents, f, now, t)


def consent_in_force(consents: Sequence[ConsentVersion], f: Field, now: datetime) -> bool:
    """Some consent covers field ``f`` for the team right now (and no deny names it)."""
    by_id: dict[str, list[ConsentVersion]] = {}
    for v in consents:
        by_id.setdefault(v.consent_id, []).append(v)
    ok = any(state and all(_covers(v, f, now) for v in state)
             for state in (_state_at(vs, now) for vs in by_id.values()))
    return ok and not _denied_now(consents, f, now, now)


def _emergency(facts: HouseholdFacts, person: str | None, f: Field | None, now: datetime) -> EmergencyOverride | None:
    return next((e for e in reversed(facts.emergencies)
                 if e.covers(person, f) and e.at <= now < e.at + EMERGENCY_WINDOW), None)


def full_basis(facts: HouseholdFacts, ev: EventFact, now: datetime) -> str | None:
    """The basis on which ``ev`` may be shown in full to the team today, or None."""
    emergency = _emergency(facts, ev.person, ev.field, now)
    if emergency is not None:
        return f"emergency:{emergency.reason}"
    if ev.person is None or ev.field is None:
        return None
    consents = facts.consents.get(ev.person, ())
    inp = DecisionInput(event_id=ev.event_id, event_type=ev.type, field=ev.field, person=ev.person,
                        household=facts.household, time=ev.time, record=ev.record)
    decision = decide(inp, consents, (), now)
    if decision.route != "team":
        return None
    consent_id = decision.basis.removeprefix("consent:").rsplit("@", 1)[0]
    return decision.basis if still_covered(consents, consent_id, ev.field, ev.time, now) else None


# --------------------------------------------------------------------------- the view
def _labels(members: Iterable[MemberFact]) -> dict[str, str]:
    """世帯員1, 世帯員2 … oldest first (unknown birth dates last); never derived from a person id."""
    ordered = sorted(members, key=lambda m: (m.birth_date is None, m.birth_date or date.min, m.person))
    return {m.person: f"世帯員{n}" for n, m in enumerate(ordered, start=1)}


def designation_in_force(d: Designation, facts: HouseholdFacts, now: datetime) -> bool:
    """A designation counts from its start until it is ended by decision (``end``) or with the case:
    once no case of its member agencies' fields is still open, the 支援会議 has nothing left to share."""
    if d.household != facts.household or not d.active_at(now):
        return False
    today = _jst_day(now)
    return any(c.field in d.member_agencies and (c.closed_on is None or c.closed_on > today) for c in facts.cases)


def _meetings(viewer: Viewer, facts: HouseholdFacts, now: datetime) -> tuple[Designation, ...]:
    active = [d for d in facts.designations if designation_in_force(d, facts, now)]
    if viewer.municipal_team:
        return tuple(active)
    if viewer.role in HOUSEHOLD_ROLES and viewer.agency is not None:
        return tuple(d for d in active if viewer.agency in d.member_agencies)
    return ()


def _jst_day(t: datetime) -> date:
    return t.astimezone(JST).date()


def view_household(viewer: Viewer, facts: HouseholdFacts, now: datetime) -> HouseholdView:
    """What ``viewer`` may see of the household at ``now`` (see the module docstring)."""
    require_aware(now, "now")
    today = _jst_day(now)
    if viewer.role not in HOUSEHOLD_ROLES:
        return HouseholdView(household=facts.household, allowed=False, route="none")
    meetings = _meetings(viewer, facts, now)
    if viewer.agency is not None and not meetings:
        return HouseholdView(household=facts.household, allowed=False, route="none")
    meeting_fields = tuple(sorted({f for d in meetings for f in d.member_agencies}))
    labels = _labels(facts.members)
    bands = {m.person: age_band(m.birth_date, today) for m in facts.members}
    members_by_id = {m.person: m for m in facts.members}
    case_by_key = {c.case: c for c in facts.cases}

    def own(record_field: Field | None) -> bool:
        return viewer.agency is not None and record_field is viewer.agency

    timeline: list[TimelineItem] = []
    full_by_case: dict[str, FullItem] = {}
    named: set[str] = set()
    for ev in sorted(facts.events, key=lambda e: (e.time, e.event_id)):
        basis = full_basis(facts, ev, now) if viewer.municipal_team else None
        if basis is not None and ev.person is not None:
            member = members_by_id.get(ev.person)
            item = FullItem(
                event_id=ev.event_id, at=ev.time, field=ev.field, change=ev.change, record=ev.record,
                member=labels.get(ev.person, "世帯員"), name=member.name if member else None, case=ev.case,
                status=ev.status, opened_on=ev.opened_on, closed_on=ev.closed_on, summary=ev.summary,
                notes=ev.notes, disability_types=ev.disability_types, topics=ev.topics,
                referral_to=ev.referral_to, basis=basis)
            timeline.append(TimelineItem(form="full", at=_jst_day(ev.time), full=item))
            named.add(ev.person)
            if ev.case is not None:
                full_by_case[ev.case] = item  # events are in time order: the newest one wins
            continue
        if ev.field is not None and ev.field in meeting_fields and ev.change != "referral":
            case = case_by_key.get(ev.case) if ev.case else None
            timeline.append(TimelineItem(form="minimal", at=_jst_day(ev.time), minimal=MinimalItem(
                field=ev.field, status=ev.status, change=ev.change, on=_jst_day(ev.time),
                opened_on=ev.opened_on, closed_on=ev.closed_on,
                age_band=bands.get(ev.person) if ev.person else None,
                record=(case.record if case else ev.record) if own(ev.field) else None,
                member=labels.get(ev.person) if ev.person else None)))

    cases: list[CaseView] = []
    for c in sorted(facts.cases, key=lambda c: (c.opened_on, c.field.value, c.case)):
        if c.case in full_by_case:
            cases.append(CaseView(form="full", field=c.field, full=full_by_case[c.case]))
        elif c.field in meeting_fields:
            cases.append(CaseView(form="minimal", field=c.field, minimal=MinimalItem(
                field=c.field, status=c.status, change=None, on=None, opened_on=c.opened_on,
                closed_on=c.closed_on, age_band=bands.get(c.person) if c.person else None,
                record=c.record if own(c.field) else None, member=labels.get(c.person) if c.person else None)))

    # a member is named when the team may see some of their records, or a consent is in force now
    for m in facts.members:
        if viewer.municipal_team and (
            any(consent_in_force(facts.consents.get(m.person, ()), f, now) for f in Field)
            or any(_emergency(facts, m.person, f, now) for f in Field)
        ):
            named.add(m.person)

    # a minimal item never ties a named member to what only the 支援会議 route shares
    named_labels = {labels[p] for p in named if p in labels}

    def unlinked(m: MinimalItem | None) -> MinimalItem | None:
        return replace(m, member=None) if m is not None and m.member in named_labels else m

    timeline = [replace(i, minimal=unlinked(i.minimal)) for i in timeline]
    cases = [replace(c, minimal=unlinked(c.minimal)) for c in cases]

    alerts = tuple(_alert_views(facts, full_by_case, today))
    route: Literal["team", "support_meeting", "alert_only", "none"]
    if named:
        route = "team"
    elif meetings:
        route = "support_meeting"
    elif alerts:
        route = "alert_only"
    else:
        route = "none"
    show_members = route != "none"
    members = tuple(
        MemberView(label=labels[m.person], age_band=bands[m.person], named=True, name=m.name, kana=m.kana,
                   birth_date=m.birth_date, sex=m.sex, relation=m.relation, person=m.person)
        if m.person in named else MemberView(label=labels[m.person], age_band=bands[m.person], named=False)
        for m in sorted(facts.members, key=lambda m: labels[m.person])
    ) if show_members else ()

    missing_fields: set[Field] = set()
    missing_members: set[str] = set()
    if show_members:
        for c in facts.cases:
            if c.closed_on is not None and c.closed_on <= today:
                continue
            if c.person is None or not consent_in_force(facts.consents.get(c.person, ()), c.field, now):
                missing_fields.add(c.field)
                if c.person in labels:
                    missing_members.add(labels[c.person])
    return HouseholdView(
        household=facts.household, allowed=True, route=route, members=members,
        member_count=len(facts.members) if show_members else 0,
        timeline=tuple(sorted(timeline, key=lambda i: i.at, reverse=True)) if route != "alert_only" else (),
        cases=tuple(cases), alerts=alerts,
        missing_consent_fields=tuple(sorted(missing_fields)),
        missing_consent_members=tuple(sorted(missing_members)),
        meetings=meetings, meeting_fields=meeting_fields,
    )


def _alert_views(facts: HouseholdFacts, full_by_case: Mapping[str, FullItem], today: date) -> list[AlertView]:
    """Each alert through hub.pipeline.alerts.view, a case counting as shareable when the viewer sees it in full."""
    snapshot = HouseholdSnapshot(
        household=facts.household,
        members=tuple(Member(person=m.person, birth_date=m.birth_date) for m in facts.members),
        cases=tuple(CaseFact(record=c.record, case=c.case, person=c.person or "", field=c.field,
                             opened_on=c.opened_on, closed_on=c.closed_on, shareable=c.case in full_by_case)
                    for c in facts.cases),
    )
    out: list[AlertView] = []
    for a in facts.alerts:
        cases = tuple(sorted(c.case for c in facts.cases if c.record in set(a.records)))
        finding = Finding(kind=a.kind, fields=tuple(sorted(a.fields)), records=tuple(sorted(a.records)),  # type: ignore[arg-type]
                          cases=cases, since=_jst_day(a.raised_at))
        shown = alert_view(finding, snapshot, today)
        out.append(AlertView(alert_id=a.alert_id, kind=a.kind, fields=tuple(sorted(a.fields)),
                             shareable=bool(shown["shareable"]), members=int(shown["members"]),
                             age_bands=tuple(shown["age_bands"]), records=tuple(shown["records"]),
                             raised_at=a.raised_at, updated_at=a.updated_at))
    return sorted(out, key=lambda a: a.updated_at, reverse=True)


def minimal_strings(view: HouseholdView) -> list[str]:
    """Every text a viewer gets from the minimal parts of a view (for the property tests and reviews)."""
    out: list[str] = []
    items = [i.minimal for i in view.timeline if i.minimal] + [c.minimal for c in view.cases if c.minimal]
    for m in items:
        out += [str(m.field), m.status or "", m.change or "", m.age_band or "", m.record or "", m.member or "",
                str(m.on or ""), str(m.opened_on or ""), str(m.closed_on or "")]
    for mv in view.members:
        if not mv.named:
            out += [mv.label, mv.age_band or "", str(mv.name or ""), str(mv.person or "")]
    for a in view.alerts:
        if not a.shareable:
            out += [a.kind, *map(str, a.fields), *a.age_bands, *a.records]
    return out
