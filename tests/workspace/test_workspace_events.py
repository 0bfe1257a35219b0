"""Workspace CloudEvents: payloads are frozen and strict, carry no personal data, and land in the hub outbox."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from hub.db import Base, make_engine, make_sessionmaker
from hub.pipeline.tables import HubOutbox
from hub.workspace.publish import alert_work_event, build_event, workspace_topic
from schemas.compat import committed_schemas
from schemas.envelope import CloudEvent
from schemas.events import EVENT_TYPES, PlanUpdatedV1, ReferralStatusV1

AT = datetime(2026, 12, 1, 1, 5, tzinfo=UTC)
NEW_TYPES = ("jp.tsunagu.alert.acknowledged.v1", "jp.tsunagu.alert.assigned.v1", "jp.tsunagu.alert.closed.v1",
             "jp.tsunagu.referral.status.v1", "jp.tsunagu.plan.updated.v1")


def test_new_event_types_are_registered_with_committed_schemas() -> None:
    """Each workspace event type has a model and a committed JSON Schema that matches it."""
    committed = committed_schemas()
    for t in NEW_TYPES:
        assert t in EVENT_TYPES
        assert committed[t] == EVENT_TYPES[t].model_json_schema(mode="validation")


def test_payloads_refuse_unknown_keys_statuses_and_free_fields() -> None:
    """extra=forbid: a name smuggled in is refused; a status outside the Gravity set too."""
    ok = {"referral": "r1", "origin": "coordinator", "target": "outreach", "status": "accepted", "by": "coordinator"}
    ReferralStatusV1.model_validate(ok)
    with pytest.raises(ValidationError):
        ReferralStatusV1.model_validate({**ok, "name": "山田 太郎"})
    with pytest.raises(ValidationError):
        ReferralStatusV1.model_validate({**ok, "status": "failed"})
    with pytest.raises(ValidationError):
        PlanUpdatedV1.model_validate({"plan": "p", "household": "h", "change": "created", "state": "active",
                                      "lead_agency": "livelihood", "version": 1, "by": "c", "goals": ["就労"]})


def test_build_event_checks_the_type_and_is_stable() -> None:
    """The same change gives the same event id; a payload of the wrong model is refused."""
    p = ReferralStatusV1(referral="r1", origin="event", target="livelihood", status="accepted", by="event")
    a = build_event("jp.tsunagu.referral.status.v1", p, subject="r1", at=AT, household="H1")
    b = build_event("jp.tsunagu.referral.status.v1", p, subject="r1", at=AT, household="H1")
    assert a.id == b.id and a.household == "H1" and a.source == "urn:tsunagu:workspace"
    with pytest.raises(ValueError):
        build_event("jp.tsunagu.plan.updated.v1", p, subject="r1", at=AT, household="H1")


def test_alert_work_events_go_to_the_outbox_in_the_callers_transaction(tmp_path: Path) -> None:
    """Written inside a transaction that rolls back, nothing is queued; committed, one row on <prefix>.workspace.v1."""
    engine = make_engine(f"sqlite:///{tmp_path / 'h.db'}")
    Base.metadata.create_all(engine)
    sessions = make_sessionmaker(engine)
    with sessions() as s, s.begin():
        alert_work_event(s, "tsunagu", alert_id="A1", household="H1", kind="8050", state="acknowledged",
                         by="coordinator", at=AT)
        s.rollback()
    with sessions() as s:
        assert s.scalars(select(HubOutbox)).all() == []
    with sessions.begin() as s:
        ev = alert_work_event(s, "tsunagu", alert_id="A1", household="H1", kind="8050", state="closed", by="c",
                              at=AT, closed_reason="no_action")
    with sessions() as s:
        rows = s.scalars(select(HubOutbox)).all()
    assert [(r.topic, r.key) for r in rows] == [(workspace_topic("tsunagu"), "H1")]
    out = CloudEvent.from_json_bytes(rows[0].value)
    assert out == ev and out.type == "jp.tsunagu.alert.closed.v1"
    with pytest.raises(ValueError), sessions.begin() as s:
        alert_work_event(s, "tsunagu", alert_id="A1", household="H1", kind="8050", state="new", by="c", at=AT)
    engine.dispose()
