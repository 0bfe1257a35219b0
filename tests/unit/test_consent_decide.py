"""The sharing decision (consent.decide) against ../shared/domain/sharing-rules.md."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consent.decide import decide, minimal_form
from consent.fhir import jiritsu_consent
from consent.model import (
    JST,
    RULE_VERSION,
    SUPPORT_MEETING_OBLIGATIONS,
    ConsentVersion,
    Decision,
    DecisionInput,
    Designation,
    EmergencyOverride,
)
from schemas.codes import CaseStatus, DisabilityType, Feed, Field
from schemas.events import CaseV1, ConsentV1, HouseholdMember, PersonRecord, RelatedPerson, Sensitive

TEAM = "重層的支援会議"
PURPOSE = "multi-agency-support"
AT = datetime(2027, 1, 1, 9, 0, tzinfo=JST)
FIELDS = list(Field)
PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def jst(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=JST)


def cv(consent_id: str = "c1", version: datetime = jst(2026, 1, 10), *, status: str = "active",
       decision: str = "permit", fields: tuple[Field, ...] = (Field.ELDERLY,), start: date = date(2026, 1, 10),
       end: date | None = None, recipient: str = TEAM, purpose: str = PURPOSE) -> ConsentVersion:
    return ConsentVersion(consent_id=consent_id, version=version, status=status,  # type: ignore[arg-type]
                          decision=decision, fields=fields, recipient=recipient,  # type: ignore[arg-type]
                          purpose=purpose, period_start=start, period_end=end, grantor="self", origin="fhir",
                          subject_resident_no="1000000001")


def ev(t: datetime, field: Field | None = Field.ELDERLY, person: str | None = "p1",
       household: str | None = "h1") -> DecisionInput:
    return DecisionInput(event_id="e1", event_type="jp.tsunagu.case.updated.v1", field=field, person=person,
                         household=household, time=t, record="houkatsu:C01-0001")


def meeting(fields: tuple[Field, ...] = (Field.ELDERLY, Field.DISABILITY), household: str = "h1",
            start: date = date(2026, 1, 1), end: date | None = None) -> Designation:
    return Designation(designation_id="d1", household=household, member_agencies=fields, start=start, end=end,
                       designated_by="multi-agency-coordination")


# --------------------------------------------------------------------------- the plain rules
def test_covering_consent_permits_team_with_its_version_as_basis() -> None:
    """An active permit for the field, in period, opens the team route and names consent id and version."""
    d = decide(ev(jst(2026, 2, 1, 10)), [cv()], [], AT)
    assert d == Decision("team", True, "consent:c1@2026-01-10T00:00:00+09:00", ())
    assert d.at == AT and d.rule_version == RULE_VERSION


def test_person_unresolved_fails_closed_even_with_consents_and_designation() -> None:
    """An event whose person the hub could not resolve never flows, whatever else holds."""
    d = decide(ev(jst(2026, 2, 1), person=None), [cv()], [meeting()], AT)
    assert (d.route, d.permit, d.basis) == (None, False, "person-unresolved")


def test_event_without_field_is_denied() -> None:
    """An event that names no field cannot be covered by any consent or designation."""
    d = decide(ev(jst(2026, 2, 1), field=None), [cv()], [meeting()], AT)
    assert not d.permit and d.route is None


def test_no_consent_denies() -> None:
    """Without consents or designations nothing flows, reason no-consent."""
    assert decide(ev(jst(2026, 2, 1)), [], [], AT).basis == "no-consent"


def test_consent_for_another_field_does_not_cover() -> None:
    """A consent covers only the fields (custodians) it names."""
    d = decide(ev(jst(2026, 2, 1), field=Field.CHILD), [cv()], [], AT)
    assert (d.permit, d.basis) == (False, "field-not-covered")


def test_period_starts_at_midnight_japan_time() -> None:
    """A consent starting on a day covers that day from 00:00 JST, not the evening before."""
    c = cv(version=jst(2026, 1, 5), start=date(2026, 1, 10))
    assert decide(ev(jst(2026, 1, 10, 0, 0)), [c], [], AT).route == "team"
    before = decide(ev(jst(2026, 1, 9, 23, 59)), [c], [], AT)
    assert (before.permit, before.basis) == (False, "outside-period")


def test_period_end_is_inclusive_through_the_end_of_that_day() -> None:
    """period_end covers the whole day in Japan time and nothing after."""
    c = cv(end=date(2026, 3, 31))
    assert decide(ev(datetime(2026, 3, 31, 23, 59, 59, 999999, tzinfo=JST)), [c], [], AT).route == "team"
    after = decide(ev(jst(2026, 4, 1)), [c], [], AT)
    assert (after.permit, after.basis) == (False, "outside-period")


def test_a_consent_counts_from_when_it_was_recorded() -> None:
    """State at event time: a version recorded after the event does not cover it (no back-dating)."""
    c = cv(version=jst(2026, 1, 20), start=date(2026, 1, 10))
    assert decide(ev(jst(2026, 1, 15)), [c], [], AT).basis == "no-consent"
    assert decide(ev(jst(2026, 1, 20, 8)), [c], [], AT).route == "team"


def test_withdrawal_stops_events_from_its_date_but_not_earlier_ones_decided_late() -> None:
    """An event from before the withdrawal still flows when decided after it; one from after never does."""
    versions = [cv(), cv(version=jst(2026, 7, 18), status="inactive")]
    late = decide(ev(jst(2026, 7, 17, 23, 59)), versions, [], at=jst(2026, 12, 1))
    assert late.route == "team" and late.basis == "consent:c1@2026-01-10T00:00:00+09:00"
    after = decide(ev(jst(2026, 7, 18, 0, 0)), versions, [], at=jst(2026, 7, 18, 1))
    assert (after.permit, after.basis) == (False, "consent-withdrawn")


def test_withdrawal_on_the_day_of_the_grant_wins() -> None:
    """Two versions with the same date-only timestamp: the more restrictive one rules (fail closed)."""
    versions = [cv(version=jst(2026, 1, 10)), cv(version=jst(2026, 1, 10), status="inactive")]
    assert not decide(ev(jst(2026, 1, 10, 12)), versions, [], AT).permit
    assert not decide(ev(jst(2026, 1, 10, 12)), list(reversed(versions)), [], AT).permit


def test_renewed_consent_after_withdrawal_covers_again() -> None:
    """A later active version of the same consent id covers from its own date."""
    versions = [cv(), cv(version=jst(2026, 3, 1), status="inactive"), cv(version=jst(2026, 5, 1))]
    assert decide(ev(jst(2026, 4, 1)), versions, [], AT).basis == "consent-withdrawn"
    assert decide(ev(jst(2026, 5, 2)), versions, [], AT).basis == "consent:c1@2026-05-01T00:00:00+09:00"


def test_deny_naming_the_field_blocks_team_from_its_period_start() -> None:
    """A deny for the same field ends the team route from the deny's period start, even if recorded later."""
    deny = cv("d1", version=jst(2026, 4, 1), decision="deny", start=date(2026, 3, 1))
    assert decide(ev(jst(2026, 2, 28, 12)), [cv(), deny], [], AT).route == "team"
    blocked = decide(ev(jst(2026, 3, 15)), [cv(), deny], [], AT)
    assert (blocked.permit, blocked.basis) == (False, "denied-by-deny-consent")


def test_deny_for_another_field_does_not_block() -> None:
    """A deny forbids only the fields it names."""
    deny = cv("d1", decision="deny", fields=(Field.CHILD,))
    assert decide(ev(jst(2026, 2, 1)), [cv(), deny], [], AT).route == "team"


def test_withdrawn_deny_no_longer_blocks() -> None:
    """A deny that is itself withdrawn stops denying from its withdrawal."""
    deny = [cv("d1", decision="deny"), cv("d1", version=jst(2026, 2, 1), decision="deny", status="inactive")]
    assert not decide(ev(jst(2026, 1, 20)), [cv(), *deny], [], AT).permit
    assert decide(ev(jst(2026, 2, 2)), [cv(), *deny], [], AT).route == "team"


@pytest.mark.parametrize(("recipient", "purpose"), [("警察", PURPOSE), (TEAM, "research"), ("", "")])
def test_consent_must_name_the_team_and_the_purpose(recipient: str, purpose: str) -> None:
    """Only consents to the 重層的支援会議 for multi-agency support open the team route."""
    d = decide(ev(jst(2026, 2, 1)), [cv(recipient=recipient, purpose=purpose)], [], AT)
    assert not d.permit


@pytest.mark.parametrize("status", ["draft", "rejected", "entered-in-error"])
def test_non_active_statuses_grant_nothing(status: str) -> None:
    """Draft, rejected and entered-in-error consents never permit."""
    assert not decide(ev(jst(2026, 2, 1)), [cv(status=status)], [], AT).permit


def test_designation_opens_the_support_meeting_route_with_obligations() -> None:
    """Without consent, a designated 支援会議 for the household and field gets the minimal form."""
    d = decide(ev(jst(2026, 2, 1)), [], [meeting()], AT)
    assert d == Decision("support_meeting", True, "designation:d1", SUPPORT_MEETING_OBLIGATIONS)


def test_consent_wins_over_designation() -> None:
    """With a covering consent the team gets the event in full, not the minimal form."""
    assert decide(ev(jst(2026, 2, 1)), [cv()], [meeting()], AT).route == "team"


def test_deny_consent_does_not_close_the_support_meeting() -> None:
    """第106条の6 sharing needs no consent, so a deny leaves the 支援会議 route open."""
    deny = cv("d1", decision="deny")
    assert decide(ev(jst(2026, 2, 1)), [cv(), deny], [meeting()], AT).route == "support_meeting"


@pytest.mark.parametrize(
    "designation",
    [
        meeting(household="h2"),
        meeting(fields=(Field.CHILD,)),
        meeting(start=date(2026, 2, 2)),
        meeting(end=date(2026, 1, 31)),
    ],
    ids=["other-household", "field-not-member", "not-yet", "ended"],
)
def test_designation_must_match_household_field_and_time(designation: Designation) -> None:
    """Only the meeting convened for this household, with this field as member, at event time, receives."""
    assert not decide(ev(jst(2026, 2, 1)), [], [designation], AT).permit


def test_designation_end_day_is_inclusive() -> None:
    """A designation ending on a day covers events through the end of that day (JST)."""
    d = meeting(end=date(2026, 2, 1))
    assert decide(ev(jst(2026, 2, 1, 23, 59)), [], [d], AT).permit
    assert not decide(ev(jst(2026, 2, 2)), [], [d], AT).permit


def test_event_without_household_cannot_use_a_designation() -> None:
    """A person not placed in a household has no 支援会議."""
    assert not decide(ev(jst(2026, 2, 1), household=None), [], [meeting()], AT).permit


def test_emergency_override_permits_with_its_reason() -> None:
    """An emergency override for the person and field opens the emergency route, basis names the reason."""
    o = EmergencyOverride(reason="life-or-body", user="op-17", at=jst(2026, 2, 1), person="p1",
                          fields=(Field.ELDERLY,))
    d = decide(ev(jst(2026, 2, 1)), [], [], AT, emergency=o)
    assert d == Decision("emergency", True, "emergency:life-or-body", ())


def test_emergency_override_for_another_person_or_field_is_ignored() -> None:
    """An override covers only the person and fields it names."""
    other = EmergencyOverride(reason="abuse-prevention", user="op-17", at=AT, person="p2", fields=(Field.ELDERLY,))
    assert not decide(ev(jst(2026, 2, 1)), [], [], AT, emergency=other).permit
    field = EmergencyOverride(reason="abuse-prevention", user="op-17", at=AT, person="p1", fields=(Field.CHILD,))
    assert not decide(ev(jst(2026, 2, 1)), [], [], AT, emergency=field).permit


@pytest.mark.parametrize(
    ("reason", "user"),
    [("", "op-1"), ("life-or-body", ""), ("  ", "op-1"), ("life-or-body", "  "), ("山田さんが倒れた", "op-1")],
)
def test_emergency_override_needs_a_reason_code_and_a_user(reason: str, user: str) -> None:
    """An override without a reason code or a user is refused (ValueError), so it cannot reach the audit."""
    with pytest.raises(ValueError):
        EmergencyOverride(reason=reason, user=user, at=AT, person="p1", fields=(Field.ELDERLY,))


def test_naive_times_are_refused() -> None:
    """Event time and decision time must carry an offset: the rules compare instants."""
    with pytest.raises(ValueError):
        ev(datetime(2026, 2, 1))
    with pytest.raises(ValueError):
        decide(ev(jst(2026, 2, 1)), [], [], datetime(2026, 2, 1))


def test_basis_is_the_same_for_versions_read_back_in_utc() -> None:
    """A version stored as UTC gives the same basis text as the one from the event (written in JST)."""
    utc = cv(version=jst(2026, 1, 10).astimezone(UTC))
    assert decide(ev(jst(2026, 2, 1)), [utc], [], AT).basis == "consent:c1@2026-01-10T00:00:00+09:00"


def test_jiritsu_form_consent_covers_livelihood_only() -> None:
    """The 自立相談支援 form's flag covers the person's livelihood records from 同意日, nothing else."""
    c = ConsentVersion.from_event(jiritsu_consent("jiritsu:J25-0001", None, date(2025, 5, 1), jst(2025, 5, 1)))
    assert decide(ev(jst(2025, 5, 2), field=Field.LIVELIHOOD), [c], [], AT).route == "team"
    assert not decide(ev(jst(2025, 5, 2), field=Field.ELDERLY), [c], [], AT).permit


def test_from_event_reads_a_naive_version_as_japan_time() -> None:
    """ConsentV1 allows a naive version; the registry reads it as 00:00 JST style local time."""
    e = ConsentV1(consent_id="c", version=datetime(2026, 1, 10), status="active", grantor="self",
                  fields=[Field.CHILD, Field.CHILD], period_start=date(2026, 1, 10), origin="tsunagu",
                  subject_record="kodomo:K1")
    v = ConsentVersion.from_event(e)
    assert v.version == jst(2026, 1, 10) and v.fields == (Field.CHILD,)


# --------------------------------------------------------------------------- properties over timelines
BASE = date(2026, 1, 1)


def _day(n: int) -> date:
    return BASE + timedelta(days=n)


@st.composite
def instants(draw: st.DrawFn, lo: int = 0, hi: int = 60, midnight_bias: bool = True) -> datetime:
    day = draw(st.integers(lo, hi))
    if midnight_bias and draw(st.booleans()):
        return datetime.combine(_day(day), time(0), tzinfo=JST)  # FHIR date-only
    minute = draw(st.integers(0, 24 * 60 - 1))
    return datetime.combine(_day(day), time(minute // 60, minute % 60), tzinfo=JST)


@st.composite
def versions(draw: st.DrawFn, consent_id: str) -> ConsentVersion:
    start = draw(st.integers(0, 50))
    end = draw(st.one_of(st.none(), st.integers(start, 60)))
    return ConsentVersion(
        consent_id=consent_id,
        version=draw(instants()),
        status=draw(st.sampled_from(["active", "active", "active", "inactive", "draft", "entered-in-error"])),
        decision=draw(st.sampled_from(["permit", "permit", "permit", "deny"])),
        fields=tuple(draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=4, unique=True))),
        recipient=draw(st.sampled_from([TEAM, TEAM, TEAM, "警察"])),
        purpose=draw(st.sampled_from([PURPOSE, PURPOSE, PURPOSE, "research"])),
        period_start=_day(start),
        period_end=_day(end) if end is not None else None,
        grantor="self",
        origin="fhir",
        subject_resident_no="1000000001",
    )


@st.composite
def timelines(draw: st.DrawFn) -> list[ConsentVersion]:
    out: list[ConsentVersion] = []
    for i in range(draw(st.integers(0, 3))):
        out += draw(st.lists(versions(f"c{i}"), min_size=1, max_size=4))
    return out


@st.composite
def designation_lists(draw: st.DrawFn) -> list[Designation]:
    out = []
    for i in range(draw(st.integers(0, 2))):
        start = draw(st.integers(0, 50))
        end = draw(st.one_of(st.none(), st.integers(start, 60)))
        out.append(Designation(
            designation_id=f"d{i}", household=draw(st.sampled_from(["h1", "h2"])),
            member_agencies=tuple(draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=4, unique=True))),
            start=_day(start), end=_day(end) if end is not None else None, designated_by="city"))
    return out


@st.composite
def events(draw: st.DrawFn) -> DecisionInput:
    return DecisionInput(event_id="e", event_type="jp.tsunagu.case.updated.v1",
                         field=draw(st.sampled_from(FIELDS)), person="p1",
                         household=draw(st.sampled_from(["h1", "h2", None])),
                         time=draw(instants(0, 65, midnight_bias=False)), record="houkatsu:C01-0001")


def _covers(v: ConsentVersion, f: Field, t: datetime) -> bool:
    """Written from the rules, independently of consent.model's helpers."""
    day = t.astimezone(JST).date()
    return (v.status == "active" and v.decision == "permit" and f in v.fields and v.recipient == TEAM
            and v.purpose == PURPOSE and v.period_start <= day and (v.period_end is None or day <= v.period_end))


def _deny_in_force(timeline: list[ConsentVersion], f: Field, t: datetime) -> bool:
    day = t.astimezone(JST).date()
    for d in timeline:
        if not (d.decision == "deny" and d.status == "active" and f in d.fields and d.period_start <= day
                and (d.period_end is None or day <= d.period_end)):
            continue
        same = [w for w in timeline if w.consent_id == d.consent_id]
        known = [w.version for w in same if w.version <= t]
        if (not known and d.version == min(w.version for w in same)) or (known and d.version == max(known)):
            return True
    return False


@PROPS
@given(timelines(), designation_lists(), events())
def test_property_team_only_with_a_consent_covering_the_field_at_source_time(
    timeline: list[ConsentVersion], designations: list[Designation], event: DecisionInput
) -> None:
    """No event reaches the team without a consent in force at its source time that covers its field."""
    d = decide(event, timeline, designations, AT)
    assert event.field is not None
    if d.route != "team":
        return
    consent_id, _, iso = d.basis.removeprefix("consent:").partition("@")
    named = [v for v in timeline if v.consent_id == consent_id and v.version == datetime.fromisoformat(iso)]
    assert named, "the basis names a version that exists"
    assert all(v.version <= event.time and _covers(v, event.field, event.time) for v in named)
    same_id = [v for v in timeline if v.consent_id == consent_id]
    assert not any(named[0].version < v.version <= event.time for v in same_id), "not superseded by event time"
    assert not _deny_in_force(timeline, event.field, event.time)


@PROPS
@given(timelines(), designation_lists(), events(), instants(0, 90), st.integers(0, 65))
def test_property_a_deny_in_force_keeps_the_field_from_the_team(
    timeline: list[ConsentVersion], designations: list[Designation], event: DecisionInput, recorded: datetime,
    start: int,
) -> None:
    """Whatever else is recorded, a deny naming the field from a start before the event closes the team route."""
    assert event.field is not None
    day = event.time.astimezone(JST).date()
    deny = cv("zz-deny", version=recorded, decision="deny", fields=(event.field,), start=min(_day(start), day))
    assert decide(event, [*timeline, deny], designations, AT).route != "team"


@PROPS
@given(timelines(), designation_lists(), events(), st.randoms(use_true_random=False))
def test_property_decision_ignores_decision_time_and_input_order(
    timeline: list[ConsentVersion], designations: list[Designation], event: DecisionInput, rnd: random.Random
) -> None:
    """Event time decides: when the hub decides, and in what order it read the versions, change nothing."""
    first = decide(event, timeline, designations, AT)
    shuffled = list(timeline)
    rnd.shuffle(shuffled)
    again = decide(event, shuffled, list(reversed(designations)), AT + timedelta(days=rnd.randint(1, 900)))
    assert again == first


@PROPS
@given(timelines(), designation_lists(), events())
def test_property_support_meeting_only_for_a_designated_member_field(
    timeline: list[ConsentVersion], designations: list[Designation], event: DecisionInput
) -> None:
    """The 支援会議 route is used only for the household's active designation with the field as member."""
    d = decide(event, timeline, designations, AT)
    if d.route == "support_meeting":
        assert d.obligations == SUPPORT_MEETING_OBLIGATIONS
        des = next(x for x in designations if d.basis == f"designation:{x.designation_id}")
        day = event.time.astimezone(JST).date()
        assert des.household == event.household and event.field in des.member_agencies
        assert des.start <= day and (des.end is None or day <= des.end)
    else:
        assert d.obligations == ()
    assert d.permit == (d.route is not None)


@PROPS
@given(
    grant_day=st.integers(0, 30),
    withdraw_after=st.integers(0, 24 * 60 * 40),
    offset=st.integers(-24 * 60 * 30, 24 * 60 * 30),
    delay=st.integers(0, 24 * 60 * 400),
    field=st.sampled_from(FIELDS),
    noise=timelines(),
)
def test_property_withdrawal_cuts_at_its_date_whenever_the_event_arrives(
    grant_day: int, withdraw_after: int, offset: int, delay: int, field: Field, noise: list[ConsentVersion]
) -> None:
    """An event from before a withdrawal flows even when decided late; an event from after it never flows."""
    granted = datetime.combine(_day(grant_day), time(0), tzinfo=JST)
    withdrawn = granted + timedelta(minutes=withdraw_after)
    grant = cv("g", version=granted, fields=(field,), start=_day(grant_day))
    withdrawal = cv("g", version=withdrawn, status="inactive", fields=(field,), start=_day(grant_day))
    others = [v for v in noise if field not in v.fields]  # cannot cover nor deny this field
    t = withdrawn + timedelta(minutes=offset)
    decided_at = max(t, withdrawn) + timedelta(minutes=delay)
    d = decide(ev(t, field=field, household=None), [grant, withdrawal, *others], [], decided_at)
    if granted <= t < withdrawn:
        assert d.route == "team" and d.basis.startswith("consent:g@")
    else:
        assert not d.permit


# --------------------------------------------------------------------------- the 支援会議 minimal form
_KANJI = st.text(alphabet="山田佐藤高橋髙﨑邊花子太郎裕祐美恵中央丁目番号区市町", min_size=2, max_size=8)
_KANA = st.text(alphabet="ｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄやまだはなこ", min_size=3, max_size=10)
_PHONE = st.from_regex(r"0[1-9]{1,3}-[0-9]{2,4}-[0-9]{4}", fullmatch=True)
_FREE = st.text(alphabet="認知症虐待疑いひきこもり借金統合失調症通院中メモ", min_size=4, max_size=20)


@st.composite
def persons(draw: st.DrawFn, record: str) -> PersonRecord:
    return PersonRecord(record=record, name=draw(_KANJI), kana=draw(_KANA),
                        birth_date=draw(st.dates(date(1920, 1, 1), date(2010, 12, 31))),
                        address=draw(_KANJI) + "1-2-3", phone=draw(_PHONE))


@st.composite
def cases(draw: st.DrawFn) -> CaseV1:
    feed = draw(st.sampled_from([Feed.HOUKATSU, Feed.SHOGAI, Feed.KODOMO, Feed.JIRITSU]))
    opened = draw(st.dates(date(2020, 1, 1), date(2026, 12, 31)))
    return CaseV1(
        feed=feed, case=f"{feed.value}:X1", opened_on=opened, status=draw(st.sampled_from(list(CaseStatus))),
        subject=draw(persons(f"{feed.value}:X1")),
        household_members=[HouseholdMember(person=draw(persons(f"{feed.value}:X1:family:1")),
                                           notes_text=draw(_FREE))],
        related_persons=[RelatedPerson(person=draw(persons("kodomo:K2")), role="guardian")],
        sensitive=Sensitive(summary=draw(_FREE), notes=[draw(_FREE)],
                            disability_types=draw(st.lists(st.sampled_from(list(DisabilityType)), min_size=1,
                                                           unique=True))),
        revision="2026-01-01T00:00:00+09:00",
    )


@PROPS
@given(cases(), st.sampled_from(["opened", "updated", "closed"]), st.dates(date(2026, 1, 1), date(2027, 12, 31)))
def test_property_minimal_form_carries_no_names_free_text_or_sensitive_data(
    case: CaseV1, change: str, on: date
) -> None:
    """The 支援会議 form holds no name, kana, address, phone, birth date, summary, notes or disability type."""
    form = minimal_form(case, change, on)
    text = json.dumps(form.model_dump(mode="json"), ensure_ascii=False)
    people = [case.subject] + [m.person for m in case.household_members] + [r.person for r in case.related_persons]
    secrets: list[str] = []
    for p in people:
        secrets += [p.name, p.kana or "", p.address or "", p.phone or "", p.record]
        assert p.birth_date is not None
        secrets.append(p.birth_date.isoformat())
    secrets += [case.sensitive.summary or "", *case.sensitive.notes, *[m.notes_text or "" for m in
                                                                       case.household_members]]
    secrets += [t.value for t in case.sensitive.disability_types]
    for s in secrets:
        assert s and s not in text
    assert set(form.model_dump()) == {"field", "status", "opened_on", "closed_on", "age_band", "change"}


def test_minimal_form_gives_field_status_dates_and_age_band() -> None:
    """The minimal form keeps what a 支援会議 needs: field, status, dates, age band, kind of change."""
    case = CaseV1(feed=Feed.SHOGAI, case="shogai:case:1", opened_on=date(2026, 1, 5), status=CaseStatus.INTAKE,
                  subject=PersonRecord(record="shogai:7", name="山田 花子", birth_date=date(1976, 6, 1)),
                  sensitive=Sensitive(disability_types=[DisabilityType.MENTAL]), revision="2026-01-05")
    form = minimal_form(case, "opened", date(2026, 6, 1))
    assert form.model_dump(mode="json") == {"field": "disability", "status": "intake", "opened_on": "2026-01-05",
                                            "closed_on": None, "age_band": "50-59", "change": "opened"}
    with pytest.raises(ValueError):
        minimal_form(case, "deleted", date(2026, 6, 1))
