"""Referral (つなぎ) status rules as pure functions: the transition table and what hub case events mean for it.

Statuses follow the HL7 Gravity SDOH referral Task (``Task.status``): ``requested`` →
``accepted`` → ``in-progress`` → ``completed``; ``rejected`` (by the receiving agency, with a
reason) and ``cancelled`` (by the requester) end it too. No I/O here: :mod:`hub.workspace.referrals`
reads and writes the tables and calls these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from schemas.codes import CaseStatus, Field, ReferralTarget
from schemas.envelope import stable_event_id
from schemas.events import CASE_TYPES, ReferralRequestedV1, ReferralStatus

STATUSES: tuple[ReferralStatus, ...] = ("requested", "accepted", "rejected", "in-progress", "completed", "cancelled")
OPEN: frozenset[ReferralStatus] = frozenset({"requested", "accepted", "in-progress"})
TERMINAL: frozenset[ReferralStatus] = frozenset({"rejected", "completed", "cancelled"})

#: who may move a referral where; the event-driven moves are a subset (never rejected or cancelled)
TRANSITIONS: Mapping[ReferralStatus, frozenset[ReferralStatus]] = {
    "requested": frozenset({"accepted", "rejected", "in-progress", "completed", "cancelled"}),
    "accepted": frozenset({"in-progress", "completed", "cancelled"}),
    "in-progress": frozenset({"completed", "cancelled"}),
    "rejected": frozenset(),
    "completed": frozenset(),
    "cancelled": frozenset(),
}
#: statuses that need a reason code (Gravity: Task.statusReason)
NEEDS_REASON: frozenset[ReferralStatus] = frozenset({"rejected", "cancelled"})
#: the reason codes the screens offer (a code, never free text: it is published in CloudEvents)
REASONS: Mapping[str, str] = {
    "not_eligible": "対象外",
    "no_capacity": "受入れ困難",
    "declined_by_person": "本人の辞退",
    "duplicate": "重複",
    "no_contact": "連絡がとれない",
    "resolved_elsewhere": "他の支援で解決",
    "other": "その他",
}
#: progress order, for moves a case event may make (forward only)
_RANK: Mapping[ReferralStatus, int] = {"requested": 0, "accepted": 1, "in-progress": 2, "completed": 3}

#: the targets a coordinator may refer to: the four agencies, the team, the other 重層 programmes
WORKSPACE_TARGETS: tuple[str, ...] = (*(t.value for t in ReferralTarget), "outreach", "participation")
#: the targets whose own case events can move a referral on (the four fields' agencies)
FIELD_TARGETS: frozenset[str] = frozenset(f.value for f in Field)

REFERRAL_REQUESTED = "jp.tsunagu.referral.requested.v1"
CASE_EVENT_TYPES: frozenset[str] = frozenset(CASE_TYPES.values())


class TransitionError(ValueError):
    """A status change the table does not allow (the message names statuses only)."""


def check_transition(current: str, to: str, reason: str | None = None) -> ReferralStatus:
    """The new status when ``current`` → ``to`` is allowed; raises :class:`TransitionError` otherwise."""
    if current not in TRANSITIONS:
        raise TransitionError(f"unknown status {current!r}")
    if to not in TRANSITIONS:
        raise TransitionError(f"unknown status {to!r}")
    target: ReferralStatus = to  # type: ignore[assignment]
    if target not in TRANSITIONS[current]:  # type: ignore[index]
        raise TransitionError(f"{current} → {to} is not allowed")
    if target in NEEDS_REASON:
        if not reason:
            raise TransitionError(f"{to} needs a reason")
        if reason not in REASONS:
            raise TransitionError("unknown reason code")
    return target


def allowed_next(current: str) -> list[ReferralStatus]:
    """The statuses a coordinator may choose next, in display order."""
    nxt = TRANSITIONS.get(current, frozenset())  # type: ignore[call-overload]
    return [s for s in STATUSES if s in nxt]


def is_forward(current: str, to: str) -> bool:
    """``to`` is further along than ``current`` on requested → accepted → in-progress → completed."""
    return current in _RANK and to in _RANK and _RANK[to] > _RANK[current]  # type: ignore[index]


def is_overdue(status: str, requested_at: datetime, now: datetime, overdue_days: int) -> bool:
    """Nobody accepted it within ``overdue_days`` days: still ``requested`` after that time."""
    return status == "requested" and now - requested_at > timedelta(days=overdue_days)


# --------------------------------------------------------------------------- from hub events
@dataclass(frozen=True)
class NewReferral:
    """A referral as a hub ``referral.requested`` event describes it (no names: the subject stays in the event)."""

    id: str
    source_event_id: str
    household_id: str | None
    person_id: str | None
    record: str
    from_agency: str | None
    target: str
    requested_at: datetime


def referral_id_for(source: str, event_id: str) -> str:
    """One referral per source event, however often it is imported."""
    return stable_event_id("referral", source, event_id)


def source_event_key(source: str, event_id: str) -> str:
    return f"{source}#{event_id}"


def referral_from_event(event: Mapping[str, Any]) -> NewReferral:
    """Map a stored ``jp.tsunagu.referral.requested.v1`` CloudEvent (a dict) to a new referral.

    Raises ``ValueError`` for another type or a payload that does not validate.
    """
    if event.get("type") != REFERRAL_REQUESTED:
        raise ValueError("not a referral.requested event")
    data = ReferralRequestedV1.model_validate(event["data"])
    source, event_id = str(event["source"]), str(event["id"])
    time = event["time"]
    at = time if isinstance(time, datetime) else datetime.fromisoformat(str(time))
    field = event.get("field")
    return NewReferral(
        id=referral_id_for(source, event_id),
        source_event_id=source_event_key(source, event_id),
        household_id=event.get("household"),
        person_id=event.get("person"),
        record=str(event.get("sourcerecord") or data.case),
        from_agency=str(field) if field else None,
        target=data.to.value,
        requested_at=at,
    )


def status_from_case(event_type: str, case_status: str) -> ReferralStatus | None:
    """What a receiving agency's case event says about a referral to it.

    A case opened at intake → ``accepted``; any working status → ``in-progress``; closed (終結, or
    中断 for livelihood) → ``completed``. An event that is not a case event says nothing.
    """
    if event_type not in CASE_EVENT_TYPES:
        return None
    try:
        status = CaseStatus(case_status)
    except ValueError:
        return None
    if event_type == CASE_TYPES["closed"] or status.is_terminal:
        return "completed"
    if status is CaseStatus.INTAKE:
        return "accepted"
    return "in-progress"


@dataclass(frozen=True)
class CaseSignal:
    """A case event of the receiving agency for the referral's person (what the hub stored)."""

    event_id: str
    type: str
    field: str | None
    person_id: str | None
    status: str
    time: datetime


def advance(current: str, target: str, person_id: str | None, requested_at: datetime,
            signals: Iterable[CaseSignal]) -> list[tuple[ReferralStatus, CaseSignal]]:
    """The moves the receiving agency's case events make, in event time order, forward only.

    Only events of the referral's person, in the target's field, at or after the request count;
    a referral already ended (or to a target that is not one of the four fields) never moves.
    Pure and idempotent: run again over the same events from the reached status, it adds nothing.
    """
    if current not in OPEN or target not in FIELD_TARGETS or person_id is None:
        return []
    moves: list[tuple[ReferralStatus, CaseSignal]] = []
    status: ReferralStatus = current
    for sig in sorted(signals, key=lambda s: (s.time, s.event_id)):
        if sig.person_id != person_id or sig.field != target or sig.time < requested_at:
            continue
        to = status_from_case(sig.type, sig.status)
        if to is None or _RANK[to] <= _RANK[status]:
            continue
        moves.append((to, sig))
        status = to
        if status in TERMINAL:
            break
    return moves


ReferralOrigin = Literal["event", "coordinator"]
