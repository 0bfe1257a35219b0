"""Arrival order in service mode: a consent version that arrives after events it covers corrects what the team got.

``tsunagu serve`` reads every feed at once, so a case event can pass the consent gate before a
withdrawal recorded *earlier* (in source time) has reached the hub. The gate decides on the consent
state as of the event's source time (``consent.decide``), so once the withdrawal is stored the same
question has a different answer. When a consent version is applied, every event of that person and
those fields that the team already got, with a source time at or after the version, is decided again;
one that would now be denied is *retracted*: a ``jp.tsunagu.team.retraction.v1`` event (ids only, no
content) tells the team's views to drop it, the event is marked unpublished, and the deny is audited.

The pure core is :func:`retractions`; :func:`correct_after_consent` is the hook the household stage
calls after it stored a consent version.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.pipeline import adapters
from hub.pipeline.tables import CaseEvent
from schemas.envelope import CloudEvent, stable_event_id

if TYPE_CHECKING:
    from hub.pipeline.stages import HubCore

RETRACTION_TYPE = "jp.tsunagu.team.retraction.v1"
TEAM_ROUTES = ("team", "emergency")


class TeamRetractionV1(BaseModel):
    """Tells team views to drop one event they were sent: as of its source time, consent did not cover it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str
    event_source: str
    consent_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Sent:
    """An event the team already got: its id, source and source time."""

    event_id: str
    source: str
    time: datetime


def retractions(sent: Iterable[Sent], still_permitted: Callable[[Sent], bool]) -> list[Sent]:
    """The sent events that the consent state as of their own source time no longer permits, in time order."""
    return sorted((e for e in sent if not still_permitted(e)), key=lambda e: (e.time, e.event_id))


def retraction_event(ev: CloudEvent, consent_id: str, basis: str) -> bytes:
    data = TeamRetractionV1(event_id=ev.id, event_source=ev.source, consent_id=consent_id, reason=basis)
    out = CloudEvent(id=stable_event_id("retraction", ev.source, ev.id, consent_id), source="urn:tsunagu:hub",
                     type=RETRACTION_TYPE, time=ev.time, sourcerecord=ev.sourcerecord, household=ev.household,
                     person=ev.person, data=data.model_dump(mode="json"))
    return out.to_json_bytes()


def correct_after_consent(core: HubCore, s: Session, ev: CloudEvent, consent: Any,
                          kept: Sequence[CaseEvent] | None = None) -> int:
    """After a consent version of ``ev.person`` was stored: retract what it now denies; returns how many.

    ``kept``: the person's kept events of the consent's fields, if the caller read them already."""
    if ev.person is None:
        return 0
    if kept is None:
        rows: Sequence[CaseEvent] = s.scalars(
            select(CaseEvent)
            .where(CaseEvent.person_id == ev.person, CaseEvent.team_published.is_(True))
            .where(CaseEvent.field.in_([f.value for f in consent.fields]))
            .where(CaseEvent.time >= ev.time)
        ).all()
    else:
        since = adapters.aware(ev.time)
        rows = [r for r in kept if r.team_published and adapters.aware(r.time) >= since]
    if not rows:
        return 0
    events = {(row.source, row.event_id): (row, CloudEvent.from_json_bytes(row.payload)) for row in rows}
    adapters.ensure_gate(s, [held for _, held in events.values()])  # one set read for every decision
    decisions: dict[tuple[str, str], Any] = {}

    def still_permitted(sent: Sent) -> bool:
        decision = adapters.decide_for(s, events[(sent.source, sent.event_id)][1], timers=core.timers)
        decisions[(sent.source, sent.event_id)] = decision
        return bool(decision.permit and decision.route in TEAM_ROUTES)

    sent = [Sent(r.event_id, r.source, adapters.aware(r.time)) for r in rows]
    out = retractions(sent, still_permitted)
    for gone in out:
        row, held = events[(gone.source, gone.event_id)]
        decision = decisions[(gone.source, gone.event_id)]
        core.emit(s, core.topics.team, held.household or held.person,
                  retraction_event(held, consent.consent_id, decision.basis))
        row.team_published = False
        core._audit.append((held, decision))  # the deny, as of the event's time, is on the record too
    return len(out)
