"""プラン rules: the action table, input checks and the monitoring-overdue rule."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from hub.workspace.plan_rules import (
    ACTIONS,
    STATES,
    PlanInput,
    PlanRuleError,
    allowed_actions,
    check_entry,
    check_plan_input,
    monitoring_overdue,
    next_state,
)

TODAY = date(2026, 12, 1)


def _input(**over: object) -> PlanInput:
    base = {"lead_agency": "livelihood",
            "roles": {"livelihood": "家計相談", "elderly": "介護サービス調整", "child": " "},
            "goals": ["就労に向けた準備", " "], "programmes": ["participation", "participation"],
            "next_monitoring_on": TODAY + timedelta(days=30)}
    base.update(over)
    return PlanInput(**base)  # type: ignore[arg-type]


def test_the_cycle_runs_through_evaluation_to_closure_or_hand_over() -> None:
    """active → (monitor) → evaluated → resumed or closed / handed over; ended plans take no action."""
    assert next_state("active", "monitor") == ("active", "monitored")
    assert next_state("active", "evaluate") == ("evaluated", "evaluated")
    assert next_state("evaluated", "resume") == ("active", "resumed")
    assert next_state("evaluated", "close") == ("closed", "closed")
    assert next_state("evaluated", "hand_over") == ("handed_over", "handed_over")
    for ended in ("closed", "handed_over"):
        assert allowed_actions(ended) == []


def test_every_action_outside_its_states_is_refused() -> None:
    """Closing an active plan without an evaluation, or monitoring an evaluated one, is refused."""
    for state in STATES:
        for action, (starts, _to, _change) in ACTIONS.items():
            if state in starts:
                next_state(state, action)
            else:
                with pytest.raises(PlanRuleError):
                    next_state(state, action)


def test_plan_input_is_cleaned_and_checked() -> None:
    """Blank roles and goals are dropped, programmes deduplicated; the lead agency needs a role."""
    clean = check_plan_input(_input(), TODAY)
    assert clean.roles == {"livelihood": "家計相談", "elderly": "介護サービス調整"}
    assert clean.goals == ["就労に向けた準備"] and clean.programmes == ["participation"]
    with pytest.raises(PlanRuleError, match="主担当機関の役割"):
        check_plan_input(_input(lead_agency="disability"), TODAY)
    with pytest.raises(PlanRuleError, match="主担当機関を選んで"):
        check_plan_input(_input(lead_agency="somewhere"), TODAY)
    with pytest.raises(PlanRuleError, match="支援目標"):
        check_plan_input(_input(goals=["  "]), TODAY)
    with pytest.raises(PlanRuleError, match="不明な事業"):
        check_plan_input(_input(programmes=["housing"]), TODAY)
    with pytest.raises(PlanRuleError, match="今日以降"):
        check_plan_input(_input(next_monitoring_on=TODAY - timedelta(days=1)), TODAY)
    with pytest.raises(PlanRuleError, match="不明な機関"):
        check_plan_input(_input(roles={"livelihood": "x", "mars": "y"}), TODAY)


def test_entries_need_a_past_date_text_and_a_later_next_monitoring_date() -> None:
    """Monitoring needs text and a next date after the entry; closure needs a reason code."""
    check_entry("monitor", TODAY, "面談を実施", TODAY, next_monitoring_on=TODAY + timedelta(days=14))
    with pytest.raises(PlanRuleError, match="未来"):
        check_entry("monitor", TODAY + timedelta(days=1), "x", TODAY, next_monitoring_on=TODAY + timedelta(days=14))
    with pytest.raises(PlanRuleError, match="記録"):
        check_entry("evaluate", TODAY, " ", TODAY)
    with pytest.raises(PlanRuleError, match="実施日より後"):
        check_entry("monitor", TODAY, "x", TODAY, next_monitoring_on=TODAY)
    with pytest.raises(PlanRuleError, match="終結の理由"):
        check_entry("close", TODAY, "", TODAY, reason="本人の希望")
    check_entry("close", TODAY, "", TODAY, reason="goals_met")
    check_entry("hand_over", TODAY, "", TODAY)


def test_monitoring_is_overdue_only_after_its_day_on_an_active_plan() -> None:
    """The monitoring day itself is on time; the day after is overdue; an evaluated or ended plan never is."""
    assert not monitoring_overdue("active", TODAY, TODAY)
    assert monitoring_overdue("active", TODAY - timedelta(days=1), TODAY)
    assert not monitoring_overdue("evaluated", TODAY - timedelta(days=10), TODAY)
    assert not monitoring_overdue("closed", TODAY - timedelta(days=10), TODAY)
    assert not monitoring_overdue("active", None, TODAY)
