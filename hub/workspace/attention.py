"""What needs the team's attention now, as pure rules over small facts (the style of hub/alerts.py).

Each rule is ``(facts, now, settings) -> list[Attention]``; an :class:`Attention` names the thing
by an opaque key (the Notification table's key) and a kind, nothing else. The notifier asks
:func:`evaluate` and sends one message for what is new.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from hub.workspace.plan_rules import monitoring_overdue
from hub.workspace.referral_rules import is_overdue

AttentionKind = Literal["alert", "referral_overdue", "monitoring_due"]
KINDS: tuple[AttentionKind, ...] = ("alert", "referral_overdue", "monitoring_due")
JST = ZoneInfo("Asia/Tokyo")


@dataclass(frozen=True)
class AlertFact:
    """A hub alert and what the team did with it (``work_state`` None = no work row = new)."""

    alert_id: str
    updated_at: datetime
    work_state: str | None = None
    last_seen_update: datetime | None = None


@dataclass(frozen=True)
class ReferralFact:
    referral_id: str
    status: str
    requested_at: datetime


@dataclass(frozen=True)
class PlanFact:
    plan_id: str
    state: str
    next_monitoring_on: date | None


@dataclass(frozen=True)
class Facts:
    alerts: Sequence[AlertFact] = ()
    referrals: Sequence[ReferralFact] = ()
    plans: Sequence[PlanFact] = ()


@dataclass(frozen=True)
class AttentionSettings:
    referral_overdue_days: int = 14


@dataclass(frozen=True, order=True)
class Attention:
    key: str
    kind: AttentionKind = field(compare=False)


def new_or_worsened_alerts(facts: Facts, now: datetime, settings: AttentionSettings) -> list[Attention]:
    """An alert raised or updated (worse) since the team last acted on it.

    Keyed by the alert and its ``updated_at``, so a worsening is a new thing and a repeat is not.
    An alert the team has acted on at or after this update needs no message.
    """
    out = []
    for a in facts.alerts:
        seen = a.last_seen_update is not None and a.last_seen_update >= a.updated_at
        if a.work_state not in (None, "new") and seen:
            continue
        out.append(Attention(f"alert:{a.alert_id}:{a.updated_at.isoformat()}", "alert"))
    return out


def overdue_referrals(facts: Facts, now: datetime, settings: AttentionSettings) -> list[Attention]:
    """A referral nobody accepted within ``referral_overdue_days`` (once per referral)."""
    return [
        Attention(f"referral-overdue:{r.referral_id}", "referral_overdue")
        for r in facts.referrals
        if is_overdue(r.status, r.requested_at, now, settings.referral_overdue_days)
    ]


def monitoring_passed(facts: Facts, now: datetime, settings: AttentionSettings) -> list[Attention]:
    """A plan whose monitoring date has passed (once per plan and date: a new date is a new thing)."""
    today = now.astimezone(JST).date()
    return [
        Attention(f"monitoring:{p.plan_id}:{p.next_monitoring_on}", "monitoring_due")
        for p in facts.plans
        if monitoring_overdue(p.state, p.next_monitoring_on, today)
    ]


Rule = Callable[[Facts, datetime, AttentionSettings], list[Attention]]

RULES: dict[AttentionKind, Rule] = {
    "alert": new_or_worsened_alerts,
    "referral_overdue": overdue_referrals,
    "monitoring_due": monitoring_passed,
}


def evaluate(facts: Facts, now: datetime, settings: AttentionSettings) -> list[Attention]:
    """Everything that needs attention now, sorted by key (deterministic)."""
    out: list[Attention] = []
    for rule in RULES.values():
        out += rule(facts, now, settings)
    return sorted(set(out))
