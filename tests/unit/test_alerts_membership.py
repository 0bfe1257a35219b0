"""Alerts on the household as it stood each day: members who arrive or leave (死亡, 転出), and alerts that end."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from hub.pipeline.alerts import Member, ended, evaluate, moments, multi_field, rule_8050
from unit.test_alerts import ON, E, L, case, parent_and_child, snap

DIED = date(2026, 7, 10)


def _parent_died() -> list[Member]:
    parent, child = parent_and_child(80, 50)
    return [replace(parent, member_until=DIED, left_reason="deceased"), child]


def test_8050_holds_while_the_parent_lives_and_not_from_the_day_of_death() -> None:
    """The rules look only at members present on the day: the parent's case stops counting on the death."""
    s = snap(_parent_died(), [case("A", E), case("B", L)])
    assert rule_8050(s, date(2026, 7, 9)) is not None
    assert rule_8050(s, DIED) is None


def test_membership_boundaries_are_moments() -> None:
    """The day a member leaves is a day on which a rule's answer can change."""
    s = snap(_parent_died(), [case("A", E), case("B", L)])
    assert DIED in moments(s, date(2026, 12, 1))


def test_8050_ends_on_the_parents_death_with_the_reason() -> None:
    """An 8050 alert that depended on the parent ends on the day of death, reason deceased, naming the parent."""
    s = snap(_parent_died(), [case("A", E), case("B", L)])
    found = evaluate(s, date(2026, 12, 1))
    assert "8050" in found and found["8050"].since == date(2026, 1, 1)
    assert ended(s, found, date(2026, 12, 1))["8050"] == (DIED, "deceased", "A")


def test_alert_does_not_end_before_the_departure_day_is_reached() -> None:
    """Evaluated on a day before the death, nothing has ended yet."""
    s = snap(_parent_died(), [case("A", E), case("B", L)])
    on = date(2026, 7, 1)
    assert ended(s, evaluate(s, on), on) == {}


def test_alert_whose_case_closed_does_not_end() -> None:
    """Only a departure ends an alert: one that stopped because a case closed stays open."""
    parent, child = parent_and_child(80, 50)
    s = snap([replace(parent, member_until=date(2026, 11, 1), left_reason="deceased"), child],
             [case("A", E), case("B", L, closed=date(2026, 6, 30))])
    found = evaluate(s, date(2026, 12, 1))
    assert "8050" in found
    assert ended(s, found, date(2026, 12, 1)) == {}


def test_a_member_who_arrived_later_does_not_count_before_arrival() -> None:
    """A member who moved in (転入) counts from the arrival day, not before."""
    parent, child = parent_and_child(80, 50)
    arrived = date(2026, 9, 1)
    s = snap([parent, replace(child, member_from=arrived)], [case("A", E), case("B", L)])
    assert multi_field(s, ON) is None
    assert multi_field(s, arrived) is not None
    assert evaluate(s, date(2026, 12, 1))["multi_field"].since == arrived


def test_moving_out_ends_multi_field_and_8050_with_reason_moved_out() -> None:
    """The child moving out of the city ends both the 8050 and the multi_field alert on that day."""
    parent, child = parent_and_child(80, 50)
    out = date(2026, 6, 30)
    s = snap([parent, replace(child, member_until=out, left_reason="moved_out")], [case("A", E), case("B", L)])
    found = evaluate(s, date(2026, 12, 1))
    gone = ended(s, found, date(2026, 12, 1))
    assert gone["8050"] == (out, "moved_out", "B") and gone["multi_field"] == (out, "moved_out", "B")


def test_membership_intervals_do_not_depend_on_arrival_order() -> None:
    """Any permutation of a resident's observations (転入, 世帯変更, 転居, 死亡) gives the same intervals."""
    import itertools

    from hub.identity.membership import intervals_from
    from hub.identity.tables import ResidentObservation

    def obs(eid: str, hh: str, rel: str, on: date, status: str | None = None, reason: str | None = None
            ) -> ResidentObservation:
        return ResidentObservation(event_id=eid, resident_no="1", person_id="P", household_id=hh, relation=rel,
                                   moved_on=on, status=status, status_on=on if status else None, move_reason=reason)

    rows = [obs("a", "H1", "child", date(2020, 1, 1), "resident", "moved_in"),
            obs("b", "H1", "head", date(2022, 3, 1), "resident", "household_changed"),
            obs("c", "H2", "head", date(2024, 5, 1), "resident", "moved_within"),
            obs("d", "H2", "head", date(2026, 7, 10), "deceased", "died")]
    want = intervals_from(rows)
    assert [(i.household_id, i.member_from, i.member_until, i.left_reason) for i in want] == [
        ("H1", date(2020, 1, 1), date(2024, 5, 1), "moved"), ("H2", date(2024, 5, 1), date(2026, 7, 10), "deceased")]
    for perm in itertools.permutations(rows):
        assert intervals_from(perm) == want


def test_the_alert_view_counts_the_members_during_the_alert() -> None:
    """What an alert shows counts the members during it: the parent who died while it held still counts,
    a member who left before it began or arrives after the day shown does not."""
    from hub.pipeline.alerts import view

    parent = parent_and_child(80, 50)[0]
    gone = replace(parent, person="X", member_until=date(2025, 12, 31), left_reason="moved_out")
    later = replace(parent, person="Y", member_from=date(2027, 1, 1))
    s = snap([*_parent_died(), gone, later], [case("A", E), case("B", L)])
    found = evaluate(s, date(2026, 12, 1))["8050"]
    shown = view(found, s, date(2026, 12, 1))
    assert shown["members"] == 2 and shown["persons"] == ["A", "B"]
