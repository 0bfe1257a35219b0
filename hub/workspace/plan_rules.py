"""プラン rules as pure functions: which action is allowed in which state, input checks, monitoring overdue.

The 多機関協働 cycle: プラン作成 → 支援の実施とモニタリング → 評価 → プラン見直し (resume) or
終結 / 主担当への引継ぎ (hand-over). Closure and hand-over follow an evaluation, as the
重層的支援会議 decides them on the evaluation. No I/O here: :mod:`hub.workspace.plans` calls these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

from schemas.codes import ReferralTarget

PlanState = Literal["active", "evaluated", "closed", "handed_over"]
PlanAction = Literal["update", "monitor", "evaluate", "resume", "close", "hand_over"]
PlanChange = Literal["created", "updated", "monitored", "evaluated", "resumed", "closed", "handed_over"]

STATES: tuple[PlanState, ...] = ("active", "evaluated", "closed", "handed_over")
ENDED: frozenset[PlanState] = frozenset({"closed", "handed_over"})

#: action → (states it may start from, state it leads to, the change it publishes)
ACTIONS: Mapping[PlanAction, tuple[frozenset[PlanState], PlanState | None, PlanChange]] = {
    "update": (frozenset({"active"}), None, "updated"),
    "monitor": (frozenset({"active"}), None, "monitored"),
    "evaluate": (frozenset({"active"}), "evaluated", "evaluated"),
    "resume": (frozenset({"evaluated"}), "active", "resumed"),
    "close": (frozenset({"evaluated"}), "closed", "closed"),
    "hand_over": (frozenset({"evaluated"}), "handed_over", "handed_over"),
}
#: the entry an action writes (None: the action changes the plan only)
ENTRY_KIND: Mapping[PlanAction, str | None] = {
    "update": None,
    "monitor": "monitoring",
    "evaluate": "evaluation",
    "resume": None,
    "close": "closure",
    "hand_over": "handover",
}

PROGRAMMES: Mapping[str, str] = {
    "outreach": "アウトリーチ等を通じた継続的支援事業",
    "participation": "参加支援事業",
}
#: 終結 reason codes (a code, never free text: it is counted in the yearly figures)
CLOSE_REASONS: Mapping[str, str] = {
    "goals_met": "目標達成",
    "stable": "生活の安定",
    "moved_out": "転出",
    "declined": "本人の辞退",
    "death": "死亡",
    "other": "その他",
}
AGENCIES: tuple[str, ...] = tuple(t.value for t in ReferralTarget if t is not ReferralTarget.MULTI_AGENCY)
MAX_TEXT = 2000
MAX_GOALS = 10


class PlanRuleError(ValueError):
    """A plan action or input the rules refuse; the message is Japanese and names no person."""


def next_state(state: str, action: PlanAction) -> tuple[PlanState, PlanChange]:
    """The state after ``action`` and the change to publish; raises :class:`PlanRuleError` if not allowed."""
    if action not in ACTIONS:
        raise PlanRuleError("不明な操作です")
    starts, to, change = ACTIONS[action]
    if state not in starts:
        raise PlanRuleError("この状態のプランではその操作はできません")
    return (to or state), change


def allowed_actions(state: str) -> list[PlanAction]:
    return [a for a, (starts, _to, _c) in ACTIONS.items() if state in starts]


@dataclass(frozen=True)
class PlanInput:
    """What a coordinator enters for a plan (creation or update)."""

    lead_agency: str
    roles: Mapping[str, str]
    goals: Sequence[str]
    programmes: Sequence[str]
    next_monitoring_on: date | None


def check_plan_input(data: PlanInput, today: date) -> PlanInput:
    """Cleaned input (blank roles and goals dropped) or :class:`PlanRuleError` naming the first problem."""
    if data.lead_agency not in AGENCIES:
        raise PlanRuleError("主担当機関を選んでください")
    roles = {a: r.strip() for a, r in data.roles.items() if r and r.strip()}
    unknown = [a for a in roles if a not in AGENCIES]
    if unknown:
        raise PlanRuleError("役割分担に不明な機関があります")
    if data.lead_agency not in roles:
        raise PlanRuleError("主担当機関の役割を入力してください")
    goals = [g.strip() for g in data.goals if g and g.strip()]
    if not goals:
        raise PlanRuleError("支援目標を1つ以上入力してください")
    if len(goals) > MAX_GOALS:
        raise PlanRuleError(f"支援目標は{MAX_GOALS}件までです")
    if any(len(t) > MAX_TEXT for t in [*goals, *roles.values()]):
        raise PlanRuleError(f"入力は{MAX_TEXT}文字までです")
    programmes = sorted(set(data.programmes))
    if any(p not in PROGRAMMES for p in programmes):
        raise PlanRuleError("不明な事業が選ばれています")
    if data.next_monitoring_on is None:
        raise PlanRuleError("次回モニタリング日を入力してください")
    if data.next_monitoring_on < today:
        raise PlanRuleError("次回モニタリング日は今日以降の日付にしてください")
    return PlanInput(data.lead_agency, roles, goals, programmes, data.next_monitoring_on)


def check_entry(action: PlanAction, on: date | None, text: str, today: date, *, next_monitoring_on: date | None = None,
                reason: str | None = None) -> None:
    """The checks of a monitoring, evaluation, resume, closure or hand-over entry."""
    if on is None:
        raise PlanRuleError("実施日を入力してください")
    if on > today:
        raise PlanRuleError("実施日に未来の日付は入力できません")
    if len(text) > MAX_TEXT:
        raise PlanRuleError(f"入力は{MAX_TEXT}文字までです")
    if action in ("monitor", "evaluate") and not text.strip():
        raise PlanRuleError("記録を入力してください")
    if action in ("monitor", "resume"):
        if next_monitoring_on is None:
            raise PlanRuleError("次回モニタリング日を入力してください")
        if next_monitoring_on <= on:
            raise PlanRuleError("次回モニタリング日は実施日より後にしてください")
    if action == "close" and reason not in CLOSE_REASONS:
        raise PlanRuleError("終結の理由を選んでください")


def monitoring_overdue(state: str, next_monitoring_on: date | None, today: date) -> bool:
    """The monitoring date has passed (the day itself is still on time) on a plan that is being carried out."""
    return state == "active" and next_monitoring_on is not None and next_monitoring_on < today
