"""The workspace's "who may see what" policy (hub/workspace/policy.py) on small hand-made households."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consent.model import JST, ConsentVersion, Designation, EmergencyOverride
from hub.workspace.policy import (
    AlertFact,
    CaseFactIn,
    EventFact,
    HouseholdFacts,
    MemberFact,
    Viewer,
    minimal_strings,
    view_household,
)
from schemas.codes import Field

H = "h-0123456789abcdef"
ELDER = "p-elder000000000001"
SON = "p-son00000000000002"
ELDER_REC = "houkatsu:C01-2025-0001"
SON_REC = "jiritsu:J-2025-0002"
NOW = datetime(2026, 11, 1, 10, 0, tzinfo=JST)
COORD = Viewer("coord", "coordinator", None)
ELDERLY_STAFF = Viewer("houkatsu1", "coordinator", Field.ELDERLY)


def at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 9, 0, tzinfo=JST)


def event(eid: str, person: str, record: str, field: Field, day: date, *, change: str = "opened",
          summary: str = "相談概要カナリア", case: str | None = None) -> EventFact:
    return EventFact(event_id=eid, source="urn:tsunagu:connector:x", type=f"jp.tsunagu.case.{change}.v1",
                     time=at(day), record=record, person=person, field=field, change=change,  # type: ignore[arg-type]
                     case=case or record, status="in_progress", opened_on=date(2025, 6, 1),
                     summary=summary, notes=("備考カナリア",), disability_types=("mental",), topics=("hardship",))


def consent(cid: str, fields: tuple[Field, ...], version: date, status: str = "active",
            decision: str = "permit", start: date = date(2025, 1, 1)) -> ConsentVersion:
    return ConsentVersion(consent_id=cid, version=at(version), status=status, decision=decision,  # type: ignore[arg-type]
                          fields=fields, recipient="重層的支援会議", purpose="multi-agency-support",
                          period_start=start, period_end=None, grantor="self", origin="tsunagu",
                          subject_record=SON_REC)


def household(**kw: object) -> HouseholdFacts:
    base = HouseholdFacts(
        household=H,
        members=(MemberFact(ELDER, "山田花子", "ヤマダハナコ", date(1944, 5, 1), "female", "head"),
                 MemberFact(SON, "山田太郎", "ヤマダタロウ", date(1978, 3, 3), "male", "child")),
        cases=(CaseFactIn(ELDER_REC, ELDER_REC, ELDER, Field.ELDERLY, "in_progress", date(2025, 6, 1)),
               CaseFactIn(SON_REC, SON_REC, SON, Field.LIVELIHOOD, "in_progress", date(2025, 6, 1))),
        events=(event("e1", ELDER, ELDER_REC, Field.ELDERLY, date(2025, 6, 1)),
                event("e2", SON, SON_REC, Field.LIVELIHOOD, date(2025, 6, 1)),
                event("e3", SON, SON_REC, Field.LIVELIHOOD, date(2026, 3, 1), change="updated")),
        alerts=(AlertFact("a1", "8050", (Field.ELDERLY, Field.LIVELIHOOD), (ELDER_REC, SON_REC),
                          at(date(2025, 6, 1)), at(date(2025, 6, 1))),),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def designation(fields: tuple[Field, ...], start: date = date(2026, 10, 1), end: date | None = None) -> Designation:
    return Designation("d1", H, fields, start, end, "coord")


SECRETS = ("山田", "ヤマダ", "カナリア", "mental", ELDER, SON)


def test_an_alert_without_consent_or_meeting_shows_only_its_minimal_form() -> None:
    """No consent and no 支援会議: masked members with age bands, the alert's kind and fields, no timeline."""
    v = view_household(COORD, household(), NOW)
    assert v.allowed and v.route == "alert_only"
    assert v.timeline == () and v.cases == ()
    assert [m.named for m in v.members] == [False, False]
    assert [m.age_band for m in v.members] == ["80-89", "40-49"]
    assert v.alerts[0].shareable is False and v.alerts[0].records == ()
    assert v.missing_consent_fields == (Field.ELDERLY, Field.LIVELIHOOD)
    assert not any(s in x for x in minimal_strings(v) for s in SECRETS)


def test_a_household_with_nothing_lawful_to_show_shows_nothing() -> None:
    """No alert, consent or meeting: the page may say nothing about the household, not even its size."""
    v = view_household(COORD, household(alerts=()), NOW)
    assert v.route == "none" and v.members == () and v.member_count == 0 and v.timeline == ()


def test_support_meeting_members_get_the_minimal_form_of_member_fields_only() -> None:
    """A 支援会議 on elderly only: elderly items in minimal form, livelihood hidden; no record keys for the team."""
    v = view_household(COORD, household(designations=(designation((Field.ELDERLY,)),)), NOW)
    assert v.route == "support_meeting"
    assert {i.form for i in v.timeline} == {"minimal"}
    assert [i.minimal.field for i in v.timeline if i.minimal] == [Field.ELDERLY]
    assert all(i.minimal and i.minimal.record is None for i in v.timeline)
    assert [c.minimal.field for c in v.cases if c.minimal] == [Field.ELDERLY]
    assert not any(s in x for x in minimal_strings(v) for s in SECRETS)


def test_an_agency_member_sees_its_own_records_by_its_own_record_key_only() -> None:
    """The elderly centre's user on the 支援会議 sees its record key on elderly items, never on others'."""
    facts = household(designations=(designation((Field.ELDERLY, Field.LIVELIHOOD)),))
    v = view_household(ELDERLY_STAFF, facts, NOW)
    assert v.allowed and v.route == "support_meeting"
    keys = {(i.minimal.field, i.minimal.record) for i in v.timeline if i.minimal}
    assert keys == {(Field.ELDERLY, ELDER_REC), (Field.LIVELIHOOD, None)}
    livelihood = Viewer("jiritsu1", "coordinator", Field.LIVELIHOOD)
    keys = {(i.minimal.field, i.minimal.record) for i in view_household(livelihood, facts, NOW).timeline if i.minimal}
    assert keys == {(Field.ELDERLY, None), (Field.LIVELIHOOD, SON_REC)}


def test_an_agency_user_outside_the_meeting_sees_nothing() -> None:
    """An agency not among the 支援会議's members, or with no 支援会議 at all, gets no household view."""
    facts = household(designations=(designation((Field.LIVELIHOOD,)),))
    assert view_household(ELDERLY_STAFF, facts, NOW).allowed is False
    assert view_household(ELDERLY_STAFF, household(), NOW).allowed is False


def test_an_ended_designation_no_longer_opens_the_minimal_form() -> None:
    """A 支援会議 ended by decision: its members are back to the alert's minimal form."""
    facts = household(designations=(designation((Field.ELDERLY,), end=date(2026, 10, 20)),))
    assert view_household(COORD, facts, NOW).timeline == ()
    assert view_household(ELDERLY_STAFF, facts, NOW).allowed is False


def test_a_designation_ends_with_the_case() -> None:
    """Once every case of the 支援会議's fields is closed, its members no longer see the minimal form."""
    closed = tuple(replace(c, closed_on=date(2026, 10, 15)) if c.field is Field.ELDERLY else c
                   for c in household().cases)
    facts = household(cases=closed, designations=(designation((Field.ELDERLY,)),))
    assert view_household(COORD, facts, NOW).route == "alert_only"
    assert view_household(ELDERLY_STAFF, facts, NOW).allowed is False
    still_open = household(designations=(designation((Field.ELDERLY,)),))
    assert view_household(ELDERLY_STAFF, still_open, NOW).allowed is True


@pytest.mark.parametrize("role", ["ops", "consent_officer"])
def test_ops_and_consent_officers_have_no_household_view(role: str) -> None:
    """Ops and consent officers never see a household, whatever the facts."""
    facts = household(consents={SON: (consent("c1", (Field.LIVELIHOOD,), date(2025, 1, 1)),)},
                      designations=(designation((Field.ELDERLY,)),))
    v = view_household(Viewer("x", role, None), facts, NOW)
    assert v.allowed is False and v.members == () and v.timeline == ()


def test_consent_opens_the_full_form_for_what_it_covers_only() -> None:
    """The son's livelihood consent: his events in full with his name; his mother stays masked, her case hidden."""
    facts = household(consents={SON: (consent("c1", (Field.LIVELIHOOD,), date(2025, 1, 1)),)})
    v = view_household(COORD, facts, NOW)
    assert v.route == "team"
    assert [(i.form, i.full.record if i.full else None) for i in v.timeline] == [("full", SON_REC), ("full", SON_REC)]
    assert v.timeline[0].full and v.timeline[0].full.summary == "相談概要カナリア"
    assert {m.name for m in v.members} == {"山田太郎", None}
    assert v.missing_consent_fields == (Field.ELDERLY,)
    assert v.alerts[0].shareable is False  # the mother's elderly record does not flow


def test_a_minimal_item_names_a_masked_member_by_label_but_never_a_named_one() -> None:
    """With consent for the son and a 支援会議 on both fields, the mother's items carry her label, his none."""
    facts = household(consents={SON: (consent("c1", (Field.LIVELIHOOD,), date(2025, 1, 1)),)},
                      designations=(designation((Field.ELDERLY, Field.LIVELIHOOD)),),
                      events=(*household().events,
                              event("e4", SON, "shogai:case:9", Field.ELDERLY, date(2026, 10, 2))))
    v = view_household(COORD, facts, NOW)
    minimal = [i.minimal for i in v.timeline if i.minimal]
    assert {(m.field, m.member) for m in minimal} == {(Field.ELDERLY, "世帯員1"), (Field.ELDERLY, None)}


def test_withdrawal_hides_the_timeline_from_its_effective_date() -> None:
    """Before the withdrawal the consented events show in full; from its date on they and the name are hidden."""
    versions = (consent("c1", (Field.LIVELIHOOD,), date(2025, 1, 1)),
                consent("c1", (Field.LIVELIHOOD,), date(2026, 9, 1), status="inactive"))
    facts = household(consents={SON: versions})
    before = view_household(COORD, facts, at(date(2026, 8, 31)))
    assert [i.form for i in before.timeline] == ["full", "full"]
    after = view_household(COORD, facts, at(date(2026, 9, 1)))
    assert after.timeline == () and all(not m.named for m in after.members)
    assert after.route == "alert_only"


def test_a_withdrawal_with_a_meeting_falls_back_to_the_minimal_form() -> None:
    """Withdrawn consent but a 支援会議 on livelihood: the son's items stay, stripped to the minimal form."""
    versions = (consent("c1", (Field.LIVELIHOOD,), date(2025, 1, 1)),
                consent("c1", (Field.LIVELIHOOD,), date(2026, 9, 1), status="inactive"))
    v = view_household(COORD, household(consents={SON: versions},
                                        designations=(designation((Field.LIVELIHOOD,)),)), NOW)
    assert [i.form for i in v.timeline] == ["minimal", "minimal"]
    assert not any(s in x for x in minimal_strings(v) for s in SECRETS)


def test_an_event_after_the_consent_period_never_shows_in_full() -> None:
    """A consent starting after the first event covers only the later one (judged at source time)."""
    facts = household(consents={SON: (consent("c1", (Field.LIVELIHOOD,), date(2026, 1, 1),
                                               start=date(2026, 1, 1)),)})
    v = view_household(COORD, facts, NOW)
    assert [i.full.event_id for i in v.timeline if i.full] == ["e3"]


def test_a_later_deny_hides_what_an_earlier_permit_covered() -> None:
    """A deny naming the field, recorded later, closes the team view of that field like a withdrawal."""
    versions = (consent("c1", (Field.LIVELIHOOD,), date(2025, 1, 1)),
                consent("c2", (Field.LIVELIHOOD,), date(2026, 10, 1), decision="deny"))
    assert view_household(COORD, household(consents={SON: versions}), NOW).timeline == ()


def test_an_emergency_opens_the_full_form_for_its_window_only() -> None:
    """An emergency override shows the person's named fields for 72 hours from its use, then nothing."""
    override = EmergencyOverride("life-or-body", "coord", NOW - timedelta(hours=1), ELDER, (Field.ELDERLY,))
    v = view_household(COORD, household(emergencies=(override,)), NOW)
    assert [i.full.basis for i in v.timeline if i.full] == ["emergency:life-or-body"]
    later = view_household(COORD, household(emergencies=(override,)), NOW + timedelta(hours=72))
    assert later.timeline == ()


def test_agency_users_never_get_the_full_form() -> None:
    """Even with consent in force, an agency's user on the 支援会議 gets only the minimal form."""
    facts = household(consents={SON: (consent("c1", (Field.LIVELIHOOD,), date(2025, 1, 1)),)},
                      designations=(designation((Field.ELDERLY, Field.LIVELIHOOD)),))
    v = view_household(ELDERLY_STAFF, facts, NOW)
    assert {i.form for i in v.timeline} == {"minimal"} and not any(m.named for m in v.members)


# --------------------------------------------------------------------------- property
names = st.text(alphabet="山田花子太郎鈴木佐藤", min_size=2, max_size=6).map(lambda s: "氏名" + s)
free = st.text(alphabet="あいうえおかきくけこ", min_size=1, max_size=10).map(lambda s: "自由記述" + s)
fields = st.sampled_from(list(Field))
days = st.dates(min_value=date(2024, 1, 1), max_value=date(2026, 12, 31))


@st.composite
def households(draw: st.DrawFn) -> HouseholdFacts:
    n = draw(st.integers(1, 4))
    members = tuple(MemberFact(f"p-{i:016x}", draw(names), "カナ" + draw(names), draw(st.none() | days),
                               "female", None) for i in range(n))
    events: list[EventFact] = []
    cases: list[CaseFactIn] = []
    for i in range(draw(st.integers(0, 6))):
        m = draw(st.sampled_from(members))
        f = draw(fields)
        rec = f"{f.value}:R{i}"
        cases.append(CaseFactIn(rec, rec, m.person, f, "in_progress", draw(days)))
        events.append(replace(event(f"e{i}", m.person, rec, f, draw(days), summary=draw(free)),
                              notes=(draw(free),), disability_types=("intellectual",)))
    consents = {m.person: tuple(consent(f"c{j}", tuple(draw(st.sets(fields, min_size=1))), draw(days),
                                        status=draw(st.sampled_from(["active", "inactive"])))
                                for j in range(draw(st.integers(0, 2))))
                for m in members}
    desig = tuple(Designation(f"d{j}", H, tuple(draw(st.sets(fields))), draw(days))
                  for j in range(draw(st.integers(0, 2))))
    return HouseholdFacts(household=H, members=members, cases=tuple(cases), events=tuple(events),
                          consents=consents, designations=desig,
                          alerts=(AlertFact("a", "multi_field", tuple(sorted({c.field for c in cases})),
                                            tuple(c.record for c in cases), at(date(2025, 1, 1)),
                                            at(date(2025, 1, 1))),) if cases else ())


viewers = st.builds(Viewer, st.just("u"), st.sampled_from(["coordinator", "admin", "consent_officer", "ops"]),
                    st.none() | fields)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(households(), viewers, days)
def test_the_minimal_form_never_carries_names_free_text_sensitive_details_or_person_ids(
        facts: HouseholdFacts, viewer: Viewer, day: date) -> None:
    """Whatever the consents, meetings and viewer: the minimal parts of a view hold no personal detail."""
    v = view_household(viewer, facts, at(day))
    secrets = [m.name for m in facts.members] + [m.kana for m in facts.members] + [m.person for m in facts.members]
    secrets += [e.summary for e in facts.events] + [n for e in facts.events for n in e.notes] + ["intellectual"]
    texts = minimal_strings(v)
    assert not [s for s in secrets if s and any(s in t for t in texts)]
    for i in v.timeline:
        if i.minimal and i.minimal.record is not None:
            assert viewer.agency is not None and i.minimal.field is viewer.agency
    if viewer.agency is not None:
        assert all(i.form == "minimal" for i in v.timeline)
