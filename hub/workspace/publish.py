"""Workspace state changes as CloudEvents, written into the hub's outbox in the caller's transaction.

The hub relays its outbox to Kafka (hub.pipeline.HubCore.outbox_batch); a row written here is
published exactly when the state change it describes commits. Topic: ``<prefix>.workspace.v1``,
keyed by household so one household's changes stay in order.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy.orm import Session

from hub.pipeline.tables import HubOutbox
from schemas.envelope import CloudEvent, stable_event_id
from schemas.events import EVENT_TYPES

SOURCE = "urn:tsunagu:workspace"


def workspace_topic(prefix: str) -> str:
    return f"{prefix}.workspace.v1"


def build_event(event_type: str, payload: BaseModel, *, subject: str, at: datetime, household: str | None,
                sourcerecord: str | None = None, person: str | None = None) -> CloudEvent:
    """A workspace CloudEvent; its id is stable for (type, subject, time), so a replay dedupes."""
    model = EVENT_TYPES.get(event_type)
    if model is None or not isinstance(payload, model):
        raise ValueError("payload does not match the event type")
    return CloudEvent(
        id=stable_event_id("workspace", event_type, subject, at.isoformat(), payload.model_dump_json()),
        source=SOURCE,
        type=event_type,
        time=at,
        subject=subject,
        sourcerecord=sourcerecord or household or subject,
        household=household,
        person=person,
        data=payload.model_dump(mode="json"),
    )


def emit(s: Session, prefix: str, event: CloudEvent) -> None:
    """Queue ``event`` in the hub outbox, inside the caller's (open) transaction."""
    s.add(HubOutbox(topic=workspace_topic(prefix), key=event.household or event.subject, value=event.to_json_bytes(),
                    created_at=datetime.now(UTC)))


ALERT_WORK_TYPES = {
    "acknowledged": "jp.tsunagu.alert.acknowledged.v1",
    "assigned": "jp.tsunagu.alert.assigned.v1",
    "closed": "jp.tsunagu.alert.closed.v1",
}


def alert_work_event(s: Session, prefix: str, *, alert_id: str, household: str, kind: str, state: str, by: str,
                     at: datetime, assignee: str | None = None, closed_reason: str | None = None,
                     reopened: bool = False) -> CloudEvent:
    """Publish (via the outbox, in the caller's transaction) what the team did with an alert."""
    from schemas.events import AlertWorkV1

    if state not in ALERT_WORK_TYPES:
        raise ValueError("alert work state must be acknowledged, assigned or closed")
    payload = AlertWorkV1.model_validate({"alert": alert_id, "household": household, "kind": kind, "state": state,
                                          "assignee": assignee, "closed_reason": closed_reason,
                                          "reopened": reopened, "by": by})
    event = build_event(ALERT_WORK_TYPES[state], payload, subject=alert_id, at=at, household=household)
    emit(s, prefix, event)
    return event
