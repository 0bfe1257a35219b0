"""The cross-field alert rules of alerts.md, their timeline and what an alert may show (hub/alerts.py)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.pipeline.alerts import (
    DEFAULT_SETTINGS,
    KINDS,
    RULES,
    AlertKind,
    AlertSettings,
    CaseFact,
    Finding,
    HouseholdSnapshot,
    Member,
    derive_child_of,
    diff_alerts,
    double_care,
    evaluate,
    moments,
    multi_field,
    rule_8050,
    turns,
    view,
    young_carer,
)
from schemas.codes import Field, MemberNote, Relation, Topic
from schemas.events import AlertV1, age_on

ON = date(2026, 6, 1)
E, D, C, L = Field.ELDERLY, Field.DISABILITY, Field.CHILD, Field.LIVELIHOOD


def born(age: int, on: date = ON, days_after: int = 0) -> date:
    """A birth date making someone exactly ``age`` on ``on`` (``days_after`` > 0: the birthday is later)."""
    return date(on.year - age, on.month, on.day) + timedelta(days=days_after)


def case(
    person: str,
    field: Field,
    opened: date = date(2026, 1, 1),
    closed: date | None = None,
    *,
    key: str | None = None,
    topics: frozenset[Topic] = frozenset(),
    shareable: bool = True,
) -> CaseFact:
    k = key or f"{field}:{person}:{opened.isoformat()}"
    return CaseFact(
        record=f"rec:{k}",
        case=f"case:{k}",
        person=person,
        field=field,
        opened_on=opened,
        closed_on=closed,
        topics=topics,
        shareable=shareable,
    )


def snap(members: list[Member], cases: list[CaseFact], household: str = "H1") -> HouseholdSnapshot:
    return HouseholdSnapshot(household=household, members=tuple(members), cases=tuple(cases))


def parent_and_child(parent_age: int, child_age: int, notes: frozenset[MemberNote] = frozenset()) -> list[Member]:
    return [
        Member("A", born(parent_age), Relation.HEAD, "registry"),
        Member("B", born(child_age), Relation.CHILD, "registry", notes, frozenset({"A"})),
    ]


# --------------------------------------------------------------------------- active cases
def test_case_is_active_from_intake_until_the_day_before_closing() -> None:
    """A case is active on its intake date and stops being active on its closing date."""
    c = case("A", E, date(2026, 1, 1), date(2026, 3, 1))
    assert not c.active_on(date(2025, 12, 31))
    assert c.active_on(date(2026, 1, 1))
    assert c.active_on(date(2026, 2, 28))
    assert not c.active_on(date(2026, 3, 1))
    assert case("A", E, date(2026, 1, 1)).active_on(date(2099, 1, 1))


# --------------------------------------------------------------------------- multi_field
def test_multi_field_two_fields_at_once() -> None:
    """Active cases in two different fields raise multi_field, naming both fields and records."""
    s = snap(parent_and_child(75, 45), [case("A", E), case("B", L)])
    f = multi_field(s, ON)
    assert f is not None
    assert f.fields == (E, L)
    assert f.records == tuple(sorted(c.record for c in s.cases))
    assert f.since == ON


def test_multi_field_one_field_twice_is_not_enough() -> None:
    """Two cases in the same field are one field, so no multi_field."""
    s = snap(parent_and_child(75, 72), [case("A", E), case("B", E)])
    assert multi_field(s, ON) is None


@pytest.mark.parametrize(
    ("closed", "expected"),
    [(ON - timedelta(days=1), False), (ON, False), (ON + timedelta(days=1), True)],
)
def test_multi_field_case_closed_the_day_before(closed: date, expected: bool) -> None:
    """A case closed the day before (or on the day) no longer counts; closed the day after it does."""
    s = snap(parent_and_child(75, 45), [case("A", E), case("B", L, closed=closed)])
    assert (multi_field(s, ON) is not None) is expected


def test_multi_field_threshold_is_a_setting() -> None:
    """With multi_field_min_fields=3 (小牧市) two fields are not enough and three are."""
    three = AlertSettings(multi_field_min_fields=3)
    two_fields = snap(parent_and_child(75, 45), [case("A", E), case("B", L)])
    assert multi_field(two_fields, ON, three) is None
    three_fields = snap(parent_and_child(75, 45), [case("A", E), case("B", L), case("B", D)])
    f = multi_field(three_fields, ON, three)
    assert f is not None and f.fields == (D, E, L)
    assert "multi_field" not in evaluate(two_fields, ON, three)
    assert "multi_field" in evaluate(three_fields, ON, three)


def test_settings_reject_impossible_thresholds() -> None:
    """A threshold that no household could meet, or an empty age range, is refused."""
    with pytest.raises(ValueError):
        AlertSettings(multi_field_min_fields=5)
    with pytest.raises(ValueError):
        AlertSettings(child_min_age=65, child_max_age=40)


# --------------------------------------------------------------------------- 8050
def test_8050_elder_with_child_in_livelihood() -> None:
    """An elderly case of a 70+ member and a livelihood case of their 40–64 child raise 8050."""
    s = snap(parent_and_child(80, 50), [case("A", E), case("B", L)])
    f = rule_8050(s, ON)
    assert f is not None
    assert f.fields == (E, L)
    assert f.records == ("rec:elderly:A:2026-01-01", "rec:livelihood:B:2026-01-01")


def test_8050_child_with_disability_case() -> None:
    """A disability case of the 40–64 child counts as well as a livelihood case."""
    s = snap(parent_and_child(80, 50), [case("A", E), case("B", D)])
    f = rule_8050(s, ON)
    assert f is not None and f.fields == (D, E)


@pytest.mark.parametrize(("days_after", "expected"), [(0, True), (1, False)])
def test_8050_elder_aged_69_vs_70_on_the_day(days_after: int, expected: bool) -> None:
    """The elder must be 70 in full years on the day: 70 on the birthday, still 69 the day before it."""
    members = [
        Member("A", born(70, days_after=days_after), Relation.HEAD),
        Member("B", born(50), Relation.CHILD, child_of=frozenset({"A"})),
    ]
    s = snap(members, [case("A", E), case("B", L)])
    assert (rule_8050(s, ON) is not None) is expected


@pytest.mark.parametrize(("age", "expected"), [(39, False), (40, True), (64, True), (65, False)])
def test_8050_child_age_boundaries(age: int, expected: bool) -> None:
    """The child must be aged 40 to 64 inclusive."""
    s = snap(parent_and_child(90, age), [case("A", E), case("B", L)])
    assert (rule_8050(s, ON) is not None) is expected


def test_8050_suspended_livelihood_is_not_active() -> None:
    """A livelihood case ended by 中断 (closed_on set) before the day no longer makes 8050."""
    s = snap(parent_and_child(80, 50), [case("A", E), case("B", L, closed=ON - timedelta(days=1))])
    assert rule_8050(s, ON) is None


def test_8050_elderly_case_closed_the_day_before() -> None:
    """The elder's case must be active on the day too."""
    s = snap(parent_and_child(80, 50), [case("A", E, closed=ON - timedelta(days=1)), case("B", L)])
    assert rule_8050(s, ON) is None


@pytest.mark.parametrize("note", [MemberNote.HIKIKOMORI, MemberNote.UNEMPLOYED, MemberNote.DISABILITY])
def test_8050_notes_only_branch(note: MemberNote) -> None:
    """A 40–64 child noted ひきこもり, 無職 or 障害 in 同居家族 counts without a case of their own."""
    s = snap(parent_and_child(80, 50, notes=frozenset({note})), [case("A", E)])
    f = rule_8050(s, ON)
    assert f is not None
    assert f.fields == (E,)
    assert f.records == ("rec:elderly:A:2026-01-01",)


def test_8050_other_notes_do_not_count() -> None:
    """就労中 or 要介護 do not make a child count for 8050."""
    s = snap(parent_and_child(80, 50, notes=frozenset({MemberNote.EMPLOYED, MemberNote.NEEDS_CARE})), [case("A", E)])
    assert rule_8050(s, ON) is None


def test_8050_needs_a_child_of_that_member() -> None:
    """A 40–64 member who is not a child of the elder (a lodger) does not make 8050."""
    members = [Member("A", born(80), Relation.HEAD), Member("B", born(50), Relation.LODGER)]
    s = snap(members, [case("A", E), case("B", L)])
    assert rule_8050(s, ON) is None
    assert multi_field(s, ON) is not None


def test_8050_child_of_the_other_parent_only() -> None:
    """The child must be a child of the member whose elderly case is active, not of someone else."""
    members = [
        Member("A", born(80), Relation.HEAD),
        Member("W", born(78), Relation.WIFE),
        Member("B", born(50), Relation.CHILD, child_of=frozenset({"W"})),
    ]
    assert rule_8050(snap(members, [case("A", E), case("B", L)]), ON) is None
    assert rule_8050(snap(members, [case("W", E), case("B", L)]), ON) is not None


def test_8050_elder_without_elderly_case() -> None:
    """A 70+ parent with no elderly case (only a livelihood case) does not make 8050."""
    s = snap(parent_and_child(80, 50), [case("A", L), case("B", L)])
    assert rule_8050(s, ON) is None


# --------------------------------------------------------------------------- double_care
def test_double_care_child_and_elderly() -> None:
    """An active child case and an active elderly case at the same time raise double_care."""
    members = [Member("G", born(80)), Member("K", born(4))]
    f = double_care(snap(members, [case("G", E), case("K", C), case("G", L)]), ON)
    assert f is not None
    assert f.fields == (C, E)
    assert len(f.records) == 2


def test_double_care_needs_both_at_once() -> None:
    """An elderly case closed before the child case opened never makes double_care, on any day."""
    members = [Member("G", born(80)), Member("K", born(4))]
    s = snap(members, [case("G", E, date(2025, 1, 1), date(2025, 7, 2)), case("K", C, date(2025, 7, 2))])
    assert double_care(s, ON) is None
    assert "double_care" not in evaluate(s, ON)


def test_double_care_only_one_side() -> None:
    """Only child cases (or only elderly cases) are not double_care."""
    members = [Member("G", born(80)), Member("K", born(4))]
    assert double_care(snap(members, [case("K", C)]), ON) is None
    assert double_care(snap(members, [case("G", E)]), ON) is None


# --------------------------------------------------------------------------- young_carer
def carer_household(young_age: int, *extra: Member) -> list[Member]:
    return [
        Member("P", born(42), Relation.HEAD, "registry"),
        Member("Y", born(young_age), Relation.CHILD, "registry", child_of=frozenset({"P"})),
        *extra,
    ]


@pytest.mark.parametrize(("age", "expected"), [(9, False), (10, True), (17, True), (18, False)])
def test_young_carer_topic_branch_ages(age: int, expected: bool) -> None:
    """A 10–17 member whose active child case lists ヤングケアラー raises young_carer; 9 and 18 do not."""
    healthy = Member("Q", born(44), Relation.WIFE)
    s = snap(carer_household(age, healthy), [case("Y", C, topics=frozenset({Topic.YOUNG_CARER}))])
    f = young_carer(s, ON)
    assert (f is not None) is expected
    if f is not None:
        assert f.fields == (C,)


def test_young_carer_topic_needs_an_active_case() -> None:
    """A ヤングケアラー child case closed the day before no longer counts."""
    c = case("Y", C, closed=ON - timedelta(days=1), topics=frozenset({Topic.YOUNG_CARER}))
    assert young_carer(snap(carer_household(12), [c]), ON) is None


def test_young_carer_cared_for_single_parent() -> None:
    """A 10–17 member with a child case and a single parent with a disability case raise young_carer."""
    s = snap(carer_household(12), [case("Y", C), case("P", D)])
    f = young_carer(s, ON)
    assert f is not None
    assert f.fields == (C, D)
    assert f.records == ("rec:child:Y:2026-01-01", "rec:disability:P:2026-01-01")


def test_young_carer_healthy_adult_shares_the_care() -> None:
    """With another adult aged 18–64 who has no disability or elderly case, there is no young_carer."""
    s = snap(carer_household(12, Member("Q", born(44), Relation.WIFE)), [case("Y", C), case("P", D)])
    assert young_carer(s, ON) is None


def test_young_carer_adult_with_other_field_case_is_still_healthy() -> None:
    """An adult whose only case is livelihood is not one of the cared-for members, so it blocks the alert."""
    s = snap(
        carer_household(12, Member("Q", born(44), Relation.WIFE)),
        [case("Y", C), case("P", D), case("Q", L)],
    )
    assert young_carer(s, ON) is None


def test_young_carer_every_adult_cared_for() -> None:
    """When every other adult 18–64 has a disability or elderly case, the clause holds."""
    s = snap(carer_household(12, Member("Q", born(44), Relation.WIFE)), [case("Y", C), case("P", D), case("Q", D)])
    f = young_carer(s, ON)
    assert f is not None and len(f.records) == 3


@pytest.mark.parametrize(("age", "expected"), [(64, False), (65, True)])
def test_young_carer_other_member_outside_18_64(age: int, expected: bool) -> None:
    """A healthy grandparent aged 65 or over is not an adult 18–64, so it does not block the alert."""
    grandparent = Member("G", born(age), Relation.MOTHER)
    s = snap(carer_household(12, grandparent), [case("Y", C), case("P", D)])
    assert (young_carer(s, ON) is not None) is expected


def test_young_carer_elderly_grandparent_is_cared_for() -> None:
    """An elderly case of another member counts as a cared-for member too."""
    members = [Member("Y", born(15)), Member("G", born(82))]
    f = young_carer(snap(members, [case("Y", C), case("G", E)]), ON)
    assert f is not None and f.fields == (C, E)


def test_young_carer_needs_another_member_cared_for() -> None:
    """The young member's own disability case is not 'another member' with one."""
    s = snap(carer_household(12), [case("Y", C), case("Y", D)])
    assert young_carer(s, ON) is None


def test_young_carer_needs_the_childs_own_case() -> None:
    """Without an active child case of the 10–17 member there is no young_carer."""
    s = snap(carer_household(12), [case("P", C), case("P", D)])
    assert young_carer(s, ON) is None


# --------------------------------------------------------------------------- child of
def test_derive_child_of_registry() -> None:
    """A 子 is the child of the 世帯主 and the 世帯主's spouse; the 世帯主 is the child of a 父 or 母."""
    got = derive_child_of(
        [
            ("H", Relation.HEAD),
            ("W", Relation.WIFE),
            ("K", Relation.CHILD),
            ("M", Relation.MOTHER),
            ("G", Relation.GRANDCHILD),
            ("X", Relation.LODGER),
        ]
    )
    assert got == {"K": frozenset({"H", "W"}), "H": frozenset({"M"})}


def test_derive_child_of_houkatsu_links() -> None:
    """A 同居家族 entry with a child 続柄 (長女, 次男, 息子 …) is the child of the subject; 妻 is not."""
    got = derive_child_of(
        [("H", Relation.HEAD), ("K", Relation.CHILD)],
        [
            ("H", "F1", Relation.ELDEST_DAUGHTER),
            ("H", "F2", Relation.WIFE),
            ("S", "K", Relation.SON),
            ("S", "F3", None),
        ],
    )
    assert got == {"K": frozenset({"H", "S"}), "F1": frozenset({"H"})}


# --------------------------------------------------------------------------- timeline
def test_evaluate_first_moment_and_widening() -> None:
    """The finding dates from the first day its condition held and widens when a later day adds a field."""
    d1, d2 = date(2025, 4, 1), date(2025, 9, 1)
    s = snap(parent_and_child(80, 50), [case("A", E, d1), case("B", D, d1), case("B", L, d2)])
    f = evaluate(s, ON)["multi_field"]
    assert f.since == d1
    assert f.fields == (D, E, L)
    assert len(f.records) == 3


def test_evaluate_keeps_a_condition_that_held_in_the_past() -> None:
    """An alert is raised when its condition first holds, even if it no longer holds on ``until``."""
    s = snap(
        parent_and_child(80, 50), [case("A", E, date(2025, 1, 1), date(2025, 3, 1)), case("B", L, date(2025, 2, 1))]
    )
    got = evaluate(s, ON)
    assert got["8050"].since == date(2025, 2, 1)
    assert rule_8050(s, ON) is None


def test_evaluate_until_excludes_later_days() -> None:
    """Nothing after ``until`` counts."""
    s = snap(parent_and_child(80, 50), [case("A", E, date(2025, 1, 1)), case("B", L, date(2026, 7, 1))])
    assert evaluate(s, ON) == {}
    assert set(evaluate(s, date(2026, 7, 1))) == {"multi_field", "8050"}


def test_evaluate_sees_a_birthday_crossing() -> None:
    """A parent who turns 70 while both cases are active raises 8050 on that birthday, not before."""
    birthday = date(2026, 3, 15)
    members = [
        Member("A", date(1956, 3, 15), Relation.HEAD),
        Member("B", date(1986, 1, 1), Relation.CHILD, child_of=frozenset({"A"})),
    ]
    s = snap(members, [case("A", E, date(2025, 1, 1)), case("B", L, date(2025, 1, 1))])
    assert evaluate(s, ON)["8050"].since == birthday
    assert "8050" not in evaluate(s, birthday - timedelta(days=1))


def test_evaluate_sees_a_child_leaving_the_young_carer_ages() -> None:
    """A healthy adult who turns 65 lifts the block from that day: young_carer dates from the birthday."""
    members = carer_household(12, Member("Q", date(1961, 4, 10), Relation.MOTHER))
    s = snap(members, [case("Y", C, date(2025, 1, 1)), case("P", D, date(2025, 1, 1))])
    assert evaluate(s, ON)["young_carer"].since == date(2026, 4, 10)


def test_turns_on_29_february() -> None:
    """Someone born on 29 February turns a year older on 1 March in a common year, as age_on counts."""
    assert turns(date(1956, 2, 29), 70) == date(2026, 3, 1)
    assert turns(date(1956, 2, 29), 68) == date(2024, 2, 29)
    members = [
        Member("A", date(1956, 2, 29), Relation.HEAD),
        Member("B", date(1986, 1, 1), Relation.CHILD, child_of=frozenset({"A"})),
    ]
    s = snap(members, [case("A", E, date(2025, 1, 1)), case("B", L, date(2025, 1, 1))])
    assert evaluate(s, ON)["8050"].since == date(2026, 3, 1)


def test_moments_are_deduplicated_and_bounded() -> None:
    """The days checked are the case boundaries and age crossings inside the span, each once, sorted."""
    members = [Member(f"M{i}", date(1950 + i, 6, 1)) for i in range(20)]
    cases = [case(f"M{i % 20}", E, date(2025, 1, 1), date(2026, 1, 1), key=str(i)) for i in range(200)]
    s = snap(members, cases)
    days = moments(s, ON)
    assert days == sorted(set(days))
    assert days[0] == date(2025, 1, 1) and days[-1] <= ON
    assert len(days) <= 2 + len(members) * len(DEFAULT_SETTINGS.age_thresholds())


def test_evaluate_empty_household() -> None:
    """A household without cases raises nothing."""
    assert evaluate(snap([Member("A", born(80))], []), ON) == {}


# --------------------------------------------------------------------------- diff_alerts
def finding(kind: AlertKind, fields: tuple[Field, ...], records: tuple[str, ...]) -> Finding:
    return Finding(kind, fields, records, tuple(f"case:{r}" for r in records), ON)


def test_diff_raises_new_kinds() -> None:
    """A kind not published before is raised."""
    now: dict[AlertKind, Finding] = {"double_care": finding("double_care", (C, E), ("r1", "r2"))}
    assert diff_alerts({}, now) == [("raised", now["double_care"])]


def test_diff_updates_only_when_it_grows() -> None:
    """The same fields and records publish nothing; a new field updates the alert."""
    prev: dict[AlertKind, tuple[tuple[Field, ...], tuple[str, ...]]] = {"multi_field": ((C, E), ("r1", "r2"))}
    assert diff_alerts(prev, {"multi_field": finding("multi_field", (C, E), ("r1", "r2"))}) == []
    [(action, f)] = diff_alerts(prev, {"multi_field": finding("multi_field", (C, E, L), ("r1", "r2", "r3"))})
    assert action == "updated" and f.fields == (C, E, L)


def test_diff_never_lowers() -> None:
    """An update keeps the fields and records already published; a kind that stopped holding stays."""
    prev: dict[AlertKind, tuple[tuple[Field, ...], tuple[str, ...]]] = {
        "multi_field": ((C, E), ("r1", "r2")),
        "8050": ((E, L), ("r1", "r3")),
    }
    [(action, f)] = diff_alerts(prev, {"multi_field": finding("multi_field", (C,), ("r9",))})
    assert action == "updated"
    assert f.fields == (C, E) and f.records == ("r1", "r2", "r9")
    assert diff_alerts(prev, {}) == []


# --------------------------------------------------------------------------- view
def test_view_shareable_shows_members_and_cases() -> None:
    """When every contributing case may flow to the team, the alert shows members and record keys."""
    s = snap(parent_and_child(80, 50), [case("A", E), case("B", L)])
    f = evaluate(s, ON)["8050"]
    v = view(f, s, ON)
    assert v["shareable"] is True
    assert v["persons"] == ["A", "B"]
    assert v["records"] == list(f.records)
    assert v["cases"] == list(f.cases)
    AlertV1(alert="a1", **{k: x for k, x in v.items() if k not in ("persons", "cases")})


def test_view_support_meeting_form() -> None:
    """With one contributing case not shareable, only kind, fields, member count and age bands show."""
    s = snap(parent_and_child(80, 50), [case("A", E), case("B", L, shareable=False)])
    f = evaluate(s, ON)["8050"]
    v = view(f, s, ON)
    assert v == {
        "kind": "8050",
        "household": "H1",
        "fields": ["elderly", "livelihood"],
        "shareable": False,
        "members": 2,
        "age_bands": ["50-59", "80-89"],
        "records": [],
    }
    AlertV1(alert="a1", **v)


def test_view_fails_closed_on_unknown_cases() -> None:
    """A finding naming a case the snapshot does not hold is shown in the 支援会議 form."""
    s = snap(parent_and_child(80, 50), [case("A", E)])
    f = Finding("8050", (E, L), ("rec:elsewhere",), ("case:elsewhere",), ON)
    v = view(f, s, ON)
    assert v["shareable"] is False and "persons" not in v and v["records"] == []


def test_view_unknown_birth_date_band() -> None:
    """A member without a birth date is counted with the band 'unknown', listed last."""
    s = snap([Member("A", born(80)), Member("B", None), Member("C", born(12))], [case("A", E, shareable=False)])
    f = Finding("multi_field", (E,), (s.cases[0].record,), (s.cases[0].case,), ON)
    assert view(f, s, ON)["age_bands"] == ["10-17", "80-89", "unknown"]


# --------------------------------------------------------------------------- order independence (hypothesis)
START, UNTIL = date(2025, 1, 1), date(2026, 12, 31)
#: ages at START per relation, each just below or at a threshold of some rule
AGES = {
    Relation.HEAD: [39, 40, 64, 65, 69, 70, 85],
    Relation.WIFE: [39, 40, 64, 65, 69, 70],
    Relation.CHILD: [9, 10, 17, 18, 39, 40, 64, 65],
    Relation.MOTHER: [64, 65, 69, 70, 85],
    Relation.LODGER: [10, 17, 30, 70],
}


@st.composite
def households(draw: st.DrawFn) -> HouseholdSnapshot:
    """A household of 1–5 members whose ages cross a threshold inside the span, with 0–8 random cases."""
    n = draw(st.integers(1, 5))
    others = [Relation.CHILD, Relation.CHILD, Relation.WIFE, Relation.MOTHER, Relation.LODGER]
    relations = [Relation.HEAD, *draw(st.lists(st.sampled_from(others), min_size=n - 1, max_size=n - 1))]
    raw = []
    for i, rel in enumerate(relations):
        age = draw(st.sampled_from(AGES[rel]))
        # turns ``age`` up to 100 days before START or within the span, so birthdays matter
        birth = date(START.year - age, 1, 1) + timedelta(days=draw(st.integers(-100, 700)))
        notes = draw(st.frozensets(st.sampled_from(list(MemberNote)), max_size=2))
        raw.append((f"P{i}", birth, rel, notes))
    child_of = derive_child_of([(p, r) for p, _, r, _ in raw])
    members = tuple(Member(p, b, r, "registry", notes, child_of.get(p, frozenset())) for p, b, r, notes in raw)
    cases = []
    if draw(st.booleans()):  # each member with a whole-span case typical of their age: only birthdays change
        for m in members:
            age = age_on(m.birth_date, START) if m.birth_date else 0
            typical = [C] if age < 18 else [L, D] if age < 65 else [E]
            f = draw(st.sampled_from(typical))
            cases.append(CaseFact(f"{f}:{m.person}", f"case:t{m.person}", m.person, f, START, None, frozenset(), True))
    for j in range(draw(st.integers(0, 8))):
        person = draw(st.sampled_from([m.person for m in members]))
        field = draw(st.sampled_from(list(Field)))
        opened = draw(st.one_of(st.just(START), st.dates(START, UNTIL)))  # often open the whole span
        length = draw(st.one_of(st.none(), st.integers(0, 400)))
        closed = None if length is None else opened + timedelta(days=length)
        topics = draw(st.frozensets(st.just(Topic.YOUNG_CARER)))
        cases.append(
            CaseFact(f"{field}:{person}", f"case:{j}", person, field, opened, closed, topics, draw(st.booleans()))
        )
    return HouseholdSnapshot("H", members, tuple(cases))


def brute_force(s: HouseholdSnapshot, until: date, cfg: AlertSettings) -> dict[AlertKind, Finding]:
    """Check every single day from the first intake to ``until`` (the reference for evaluate)."""
    out: dict[AlertKind, Finding] = {}
    if not s.cases:
        return out
    day = min(c.opened_on for c in s.cases)
    while day <= until:
        for kind in KINDS:
            f = RULES[kind](s, day, cfg)
            if f is not None:
                out[kind] = out[kind].widened(f) if kind in out else f
        day += timedelta(days=1)
    return out


HYPO = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@HYPO
@given(households(), st.sampled_from([2, 3]))
def test_evaluate_equals_checking_every_day(s: HouseholdSnapshot, min_fields: int) -> None:
    """Checking only the boundary days finds exactly what checking every day finds."""
    cfg = AlertSettings(multi_field_min_fields=min_fields)
    assert evaluate(s, UNTIL, cfg) == brute_force(s, UNTIL, cfg)


@HYPO
@given(st.data())
def test_evaluate_ignores_the_order_of_cases_and_members(data: st.DataObject) -> None:
    """Any permutation of the cases (and of the members) gives the same findings."""
    s = data.draw(households())
    cases = data.draw(st.permutations(s.cases))
    members = data.draw(st.permutations(s.members))
    assert evaluate(HouseholdSnapshot("H", tuple(members), tuple(cases)), UNTIL) == evaluate(s, UNTIL)


@HYPO
@given(st.data())
def test_incremental_arrival_ends_where_the_whole_does(data: st.DataObject) -> None:
    """Evaluating after each arrival and publishing diffs ends in the state evaluate gives on the whole."""
    s = data.draw(households())
    arrival = data.draw(st.permutations(s.cases))
    whole = evaluate(s, UNTIL)
    state: dict[AlertKind, tuple[tuple[Field, ...], tuple[str, ...]]] = {}
    for k in range(1, len(arrival) + 1):
        current = evaluate(HouseholdSnapshot("H", s.members, tuple(arrival[:k])), UNTIL)
        for kind, f in current.items():  # monotone: a late case only ever adds to an alert
            assert set(f.fields) <= set(whole[kind].fields) and set(f.records) <= set(whole[kind].records)
        for action, f in diff_alerts(state, current):
            assert (action == "raised") is (f.kind not in state)
            state[f.kind] = (f.fields, f.records)
    assert state == {k: (f.fields, f.records) for k, f in whole.items()}
