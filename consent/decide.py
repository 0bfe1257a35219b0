"""The sharing decision as one pure function (../shared/domain/sharing-rules.md).

``decide`` judges an event at the time the change happened at its source (``event.time``);
``at`` (when the hub decides) is only recorded. Order of the rules:

1. an emergency override that covers the event's person and field → ``emergency``;
2. person not resolved → deny ``person-unresolved``; no field → deny ``field-not-covered``
   (fail closed: when the hub cannot tell, nothing flows);
3. a consent covering the field at event time, and no ``deny`` naming the field → ``team``;
4. otherwise a 支援会議 designation for the event's household, active at event time, with the
   field among its members → ``support_meeting`` with the strip obligations;
5. otherwise deny, with the most telling reason: ``denied-by-deny-consent``,
   ``consent-withdrawn``, ``outside-period``, ``field-not-covered``, ``no-consent``.

Consent state at an instant ``t`` (one consent id): the versions whose ``version`` is the latest
one ``<= t``. A consent therefore counts from when it was recorded (and from ``period_start``,
whichever is later); a withdrawal counts from its own ``date``, so an event from before the
withdrawal still flows however late it is decided, and one from after it never does.
Versions with the same timestamp all rule together and the consent covers only if every one of
them does (fail closed: a withdrawal recorded the same day as the grant wins).
A ``deny`` counts from its period start even before it was recorded (fail closed) and blocks the
team route for the fields it names, whatever its recipient; it does not close the 支援会議 or
emergency routes, which need no consent.
``period_end`` is inclusive: a consent ending 2026-03-31 covers events through 23:59:59.999999
Japan time that day.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime
from typing import Literal

from consent.model import (
    SUPPORT_MEETING_OBLIGATIONS,
    ConsentVersion,
    Decision,
    DecisionInput,
    Designation,
    EmergencyOverride,
    jst_iso,
    require_aware,
)
from schemas.codes import FEED_FIELD, Field
from schemas.events import CaseV1, SupportMeetingCaseV1, age_band

# deny reasons, strongest first
DENIED_BY_DENY = "denied-by-deny-consent"
WITHDRAWN = "consent-withdrawn"
OUTSIDE_PERIOD = "outside-period"
FIELD_NOT_COVERED = "field-not-covered"
NO_CONSENT = "no-consent"
PERSON_UNRESOLVED = "person-unresolved"
_STRENGTH = {DENIED_BY_DENY: 5, WITHDRAWN: 4, OUTSIDE_PERIOD: 3, FIELD_NOT_COVERED: 2, NO_CONSENT: 1}

Change = Literal["opened", "updated", "closed"]
_CHANGES: dict[str, Change] = {"opened": "opened", "updated": "updated", "closed": "closed"}


def _state_at(versions: Sequence[ConsentVersion], t: datetime) -> list[ConsentVersion]:
    """The versions in force at ``t``: all those sharing the latest ``version`` not after ``t``."""
    latest: datetime | None = None
    for v in versions:
        if v.version <= t and (latest is None or v.version > latest):
            latest = v.version
    if latest is None:
        return []
    return [v for v in versions if v.version == latest]


def _permit_outcome(state: Sequence[ConsentVersion], history: Sequence[ConsentVersion], f: Field,
                    t: datetime) -> str | None:
    """None when this consent covers field ``f`` at ``t``, else the reason it does not."""
    if not state:
        return NO_CONSENT
    reasons = [_one(v, f, t) for v in state]
    if all(r is None for r in reasons):
        return None
    worst = max((r for r in reasons if r is not None), key=_STRENGTH.__getitem__)
    if worst == NO_CONSENT and any(v.status in ("inactive", "entered-in-error") for v in state) and any(
        h.status == "active" and h.decision == "permit" and f in h.fields and h.version < state[0].version
        for h in history
    ):
        return WITHDRAWN
    return worst


def _one(v: ConsentVersion, f: Field, t: datetime) -> str | None:
    if v.status != "active" or v.decision != "permit" or not v.counts_for_team:
        return NO_CONSENT
    if f not in v.fields:
        return FIELD_NOT_COVERED
    if not v.in_period(t):
        return OUTSIDE_PERIOD
    return None


def _denies(versions: Sequence[ConsentVersion], f: Field, t: datetime) -> bool:
    """A deny naming ``f`` is in force at ``t`` (before it was recorded too: from its period start)."""
    if not any(v.decision == "deny" for v in versions):
        return False
    state = _state_at(versions, t)
    if not state:
        first = min(v.version for v in versions)
        state = [v for v in versions if v.version == first]
    return any(v.status == "active" and v.decision == "deny" and f in v.fields and v.in_period(t) for v in state)


def decide(
    event: DecisionInput,
    consents: Sequence[ConsentVersion],
    designations: Sequence[Designation],
    at: datetime,
    emergency: EmergencyOverride | None = None,
) -> Decision:
    """Which route, if any, may carry this event, and on what basis.

    ``consents`` are the versions whose subject is ``event.person`` (the caller resolves that);
    ``designations`` may include other households' (they are filtered here).
    """
    require_aware(at, "at")
    t = event.time
    if emergency is not None and emergency.covers(event.person, event.field):
        return Decision("emergency", True, f"emergency:{emergency.reason}", (), at)
    if event.person is None:
        return Decision(None, False, PERSON_UNRESOLVED, (), at)
    f = event.field
    if f is None:
        return Decision(None, False, FIELD_NOT_COVERED, (), at)

    by_id: dict[str, list[ConsentVersion]] = defaultdict(list)
    for c in consents:
        by_id[c.consent_id].append(c)

    denied = False
    covering: list[ConsentVersion] = []
    reason = NO_CONSENT
    for consent_id in sorted(by_id):
        versions = by_id[consent_id]
        if _denies(versions, f, t):
            denied = True
        state = _state_at(versions, t)
        outcome = _permit_outcome(state, versions, f, t)
        if outcome is None:
            covering.append(state[0])
        elif _STRENGTH[outcome] > _STRENGTH[reason]:
            reason = outcome

    if covering and not denied:
        best = max(covering, key=lambda v: (v.version, v.consent_id))
        return Decision("team", True, f"consent:{best.consent_id}@{jst_iso(best.version)}", (), at)

    if event.household is not None:
        meeting = sorted(
            (d for d in designations
             if d.household == event.household and f in d.member_agencies and d.active_at(t)),
            key=lambda d: (d.start, d.designation_id),
        )
        if meeting:
            return Decision("support_meeting", True, f"designation:{meeting[0].designation_id}",
                            SUPPORT_MEETING_OBLIGATIONS, at)

    return Decision(None, False, DENIED_BY_DENY if denied else reason, (), at)


def minimal_form(case: CaseV1, change: str, on: date) -> SupportMeetingCaseV1:
    """The 支援会議 form of a case: field, status, dates, age band; no names, free text or 要配慮 details."""
    kind = _CHANGES.get(change)
    if kind is None:
        raise ValueError("change must be opened, updated or closed")
    field_ = FEED_FIELD.get(case.feed)
    if field_ is None:
        raise ValueError("the case's feed belongs to no field")
    return SupportMeetingCaseV1(
        field=field_,
        status=case.status,
        opened_on=case.opened_on,
        closed_on=case.closed_on,
        age_band=age_band(case.subject.birth_date, on),
        change=kind,
    )
