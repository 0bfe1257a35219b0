"""Referral status rules: the Gravity-style transition table and what hub events mean for a referral."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.workspace.referral_rules import (
    NEEDS_REASON,
    OPEN,
    STATUSES,
    TERMINAL,
    TRANSITIONS,
    CaseSignal,
    TransitionError,
    advance,
    allowed_next,
    check_transition,
    is_overdue,
    referral_from_event,
    referral_id_for,
    status_from_case,
)
from schemas.envelope import CloudEvent

T0 = datetime(2026, 6, 1, 1, 0, tzinfo=UTC)


def test_every_allowed_transition_is_accepted_and_every_other_refused() -> None:
    """check_transition accepts exactly the pairs of the table (with a reason where one is needed)."""
    for current, to in itertools.product(STATUSES, STATUSES):
        reason = "not_eligible" if to in NEEDS_REASON else None
        if to in TRANSITIONS[current]:
            assert check_transition(current, to, reason) == to
        else:
            with pytest.raises(TransitionError):
                check_transition(current, to, reason)


def test_ended_referrals_never_move_and_open_ones_can_end() -> None:
    """Rejected, completed and cancelled are terminal; every open status can still be cancelled."""
    for s in TERMINAL:
        assert allowed_next(s) == []
    for s in OPEN:
        assert "cancelled" in allowed_next(s)
    assert "rejected" in allowed_next("requested")
    assert "requested" not in {t for ts in TRANSITIONS.values() for t in ts}


def test_rejection_and_cancellation_need_a_known_reason_code() -> None:
    """A rejection without a reason, or with free text instead of a code, is refused."""
    with pytest.raises(TransitionError, match="needs a reason"):
        check_transition("requested", "rejected", None)
    with pytest.raises(TransitionError, match="unknown reason"):
        check_transition("requested", "rejected", "山田さんは対象外")
    assert check_transition("accepted", "cancelled", "duplicate") == "cancelled"


def test_unknown_statuses_are_refused() -> None:
    """A status outside the Gravity set is an error, not a silent no-op."""
    with pytest.raises(TransitionError):
        check_transition("requested", "failed")
    with pytest.raises(TransitionError):
        check_transition("draft", "accepted")


def test_overdue_only_while_nobody_accepted_after_the_configured_days() -> None:
    """A referral is overdue when still requested more than N days after the request."""
    assert not is_overdue("requested", T0, T0 + timedelta(days=14), 14)
    assert is_overdue("requested", T0, T0 + timedelta(days=14, seconds=1), 14)
    assert not is_overdue("accepted", T0, T0 + timedelta(days=60), 14)
    assert is_overdue("requested", T0, T0 + timedelta(days=4), 3)


def _referral_event(**over: object) -> dict[str, object]:
    ev = CloudEvent(
        id="ev-1", source="urn:tsunagu:houkatsu:C01", type="jp.tsunagu.referral.requested.v1",
        time=T0, sourcerecord="houkatsu:C01-2025-0042", field="elderly", person="P1", household="H1",
        data={"feed": "houkatsu", "case": "houkatsu:C01-2025-0042", "to": "livelihood", "requested_on": "2026-06-01",
              "subject": {"record": "houkatsu:C01-2025-0042", "name": "山田 太郎"}},
    )
    d = ev.model_dump(mode="json")
    d.update(over)
    return d


def test_a_referral_event_maps_to_a_requested_referral_with_a_stable_id() -> None:
    """The hub's referral.requested event becomes one referral: target, source agency, person, household, time."""
    r = referral_from_event(_referral_event())
    assert r.id == referral_id_for("urn:tsunagu:houkatsu:C01", "ev-1")
    assert (r.target, r.from_agency, r.person_id, r.household_id) == ("livelihood", "elderly", "P1", "H1")
    assert r.requested_at == T0
    assert r.source_event_id == "urn:tsunagu:houkatsu:C01#ev-1"
    assert "山田" not in repr(r)
    assert referral_from_event(_referral_event()).id == r.id
    assert referral_from_event(_referral_event(id="ev-2")).id != r.id


def test_other_events_or_broken_payloads_are_not_referrals() -> None:
    """A case event or a referral payload that does not validate raises instead of making a referral."""
    with pytest.raises(ValueError):
        referral_from_event(_referral_event(type="jp.tsunagu.case.opened.v1"))
    with pytest.raises(ValueError):
        referral_from_event(_referral_event(data={"feed": "houkatsu"}))


def test_case_statuses_map_to_referral_progress() -> None:
    """Intake → accepted, working statuses → in-progress, 終結 / 中断 or a closed event → completed."""
    assert status_from_case("jp.tsunagu.case.opened.v1", "intake") == "accepted"
    assert status_from_case("jp.tsunagu.case.updated.v1", "in_progress") == "in-progress"
    assert status_from_case("jp.tsunagu.case.updated.v1", "assessment") == "in-progress"
    assert status_from_case("jp.tsunagu.case.closed.v1", "closed") == "completed"
    assert status_from_case("jp.tsunagu.case.updated.v1", "suspended") == "completed"
    assert status_from_case("jp.tsunagu.referral.requested.v1", "intake") is None
    assert status_from_case("jp.tsunagu.case.updated.v1", "nonsense") is None


def _sig(i: int, typ: str, status: str, *, field: str = "livelihood", person: str = "P1", days: int = 1) -> CaseSignal:
    return CaseSignal(f"e{i}", f"jp.tsunagu.case.{typ}.v1", field, person, status, T0 + timedelta(days=days))


def test_the_receiving_agencys_events_move_the_referral_forward_in_time_order() -> None:
    """Opened then updated then closed at the target agency: accepted → in-progress → completed."""
    sigs = [_sig(3, "closed", "closed", days=30), _sig(1, "opened", "intake", days=2),
            _sig(2, "updated", "in_progress", days=5)]
    moves = advance("requested", "livelihood", "P1", T0, sigs)
    assert [m[0] for m in moves] == ["accepted", "in-progress", "completed"]
    assert [m[1].event_id for m in moves] == ["e1", "e2", "e3"]


def test_events_of_another_person_field_or_before_the_request_do_not_count() -> None:
    """Only the referred person's case at the target agency, from the request on, moves a referral."""
    sigs = [_sig(1, "opened", "intake", person="P2"), _sig(2, "opened", "intake", field="elderly"),
            _sig(3, "opened", "intake", days=-3)]
    assert advance("requested", "livelihood", "P1", T0, sigs) == []
    assert advance("requested", "livelihood", None, T0, [_sig(4, "opened", "intake", person="P1")]) == []


def test_moves_never_go_backwards_nor_touch_ended_or_non_field_referrals() -> None:
    """An intake event after in-progress adds nothing; a cancelled or outreach referral never moves."""
    assert advance("in-progress", "livelihood", "P1", T0, [_sig(1, "opened", "intake")]) == []
    assert advance("cancelled", "livelihood", "P1", T0, [_sig(1, "closed", "closed")]) == []
    assert advance("requested", "outreach", "P1", T0, [_sig(1, "opened", "intake", field="outreach")]) == []


_statuses = st.sampled_from(["intake", "assessment", "in_progress", "ongoing", "referred", "closed", "suspended"])
_types = st.sampled_from(["opened", "updated", "closed"])


@given(st.lists(st.tuples(_types, _statuses, st.integers(-5, 40)), max_size=12), st.sampled_from(sorted(OPEN)))
def test_advance_is_idempotent_and_every_move_is_allowed(items: list[tuple[str, str, int]], start: str) -> None:
    """Any event history: each move is allowed by the table, and running again from the end adds nothing."""
    sigs = [_sig(i, t, s, days=d) for i, (t, s, d) in enumerate(items)]
    moves = advance(start, "livelihood", "P1", T0, sigs)
    current = start
    for to, _ in moves:
        assert check_transition(current, to) == to
        current = to
    assert advance(current, "livelihood", "P1", T0, sigs) == []


def test_forward_follows_the_progress_order_only() -> None:
    """requested < accepted < in-progress < completed; rejected and cancelled are never 'forward'."""
    from hub.workspace.referral_rules import is_forward

    assert is_forward("requested", "in-progress") and is_forward("accepted", "completed")
    assert not is_forward("in-progress", "accepted") and not is_forward("completed", "completed")
    assert not is_forward("requested", "cancelled") and not is_forward("rejected", "completed")
