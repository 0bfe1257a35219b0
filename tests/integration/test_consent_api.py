"""The consent officer's API (hub.http.consent) on SQLite and PostgreSQL, and once through the real broker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from consent.fhir import parse_consent, to_fhir
from consent.model import JST
from consent.store import ConsentRepository
from hub.bootstrap import Database
from hub.http.consent.publishers import KafkaEventPublisher
from hub.http.consent.router import make_consent_router
from schemas.codes import Field
from schemas.envelope import CloudEvent
from schemas.events import ConsentV1, PersonRecord, ResidentObservedV1

ADULT_NO = "1055400001"
CHILD_NO = "1055400002"
HOUSEHOLD_NO = "0000012345"
TOKENS = {"officer-token": "consent_officer", "coord-token": "coordinator:op-1", "audit-token": "auditor",
          "anon-coord-token": "coordinator"}
OFFICER = {"Authorization": "Bearer officer-token"}
COORDINATOR = {"Authorization": "Bearer coord-token"}
NOW = datetime(2026, 6, 1, 10, 30, 15, 123456, tzinfo=JST)


class Recorder:
    """A publish_event that keeps what it was given (or fails, to stand in for a broker outage)."""

    def __init__(self) -> None:
        self.events: list[CloudEvent] = []
        self.fail = False

    async def __call__(self, event: CloudEvent) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.events.append(event)


def resident(no: str, birth: date, relation: str) -> ResidentObservedV1:
    return ResidentObservedV1(
        resident=PersonRecord(record=f"registry:{no}", name="試験　太郎", kana="シケン　タロウ", birth_date=birth,
                              resident_no=no, household_no=HOUSEHOLD_NO, relation=relation),
        snapshot="test",
    )


def open_database(url: str) -> Database:
    return Database.open(url)


def seed(sessions: sessionmaker[Session]) -> dict[str, str]:
    """Two residents of one household (an adult and a child); returns their hub ids."""
    from hub.identity.resolver import IdentityService

    with sessions.begin() as s:
        svc = IdentityService(s)
        adult = svc.observe_resident(resident(ADULT_NO, date(1980, 4, 1), "head"))
        child = svc.observe_resident(resident(CHILD_NO, date(2015, 9, 1), "child"))
    assert adult.household_id is not None
    return {"adult": adult.person_id, "child": child.person_id, "household": adult.household_id}


@pytest.fixture
def hub(database_url: str) -> Iterator[tuple[TestClient, Recorder, sessionmaker[Session], dict[str, str]]]:
    database = open_database(database_url)
    sessions = database.sessions
    ids = seed(sessions)
    recorder = Recorder()
    app = FastAPI()
    app.include_router(make_consent_router(sessions, recorder, tokens=TOKENS, municipality_code="999999",
                                           now=lambda: NOW))
    with TestClient(app) as client:
        yield client, recorder, sessions, ids
    database.close()


def consent_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subject": {"resident_no": ADULT_NO},
        "fields": ["elderly", "livelihood"],
        "grantor": "self",
        "period": {"start": "2026-06-01", "end": "2027-03-31"},
        "purpose": "multi-agency-support",
    }
    body.update(changes)
    return body


def stored(sessions: sessionmaker[Session], resident_no: str) -> list[Any]:
    with sessions() as s:
        return ConsentRepository(s).versions_for({resident_no}, set())


def test_authentication_and_roles(hub: Any) -> None:
    """No or an unknown token is 401; an unknown role, or a role not allowed for the endpoint, is 403."""
    client, recorder, sessions, ids = hub
    assert client.post("/consents", json=consent_body()).status_code == 401
    bad = client.post("/consents", json=consent_body(), headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"
    basic = client.post("/consents", json=consent_body(), headers={"Authorization": "Basic b2ZmaWNlcg=="})
    assert basic.status_code == 401
    auditor = client.get(f"/persons/{ADULT_NO}/consents", headers={"Authorization": "Bearer audit-token"})
    assert auditor.status_code == 403
    assert client.post("/consents", json=consent_body(), headers=COORDINATOR).status_code == 403
    designation = {"household": ids["household"], "member_agencies": ["elderly"], "start": "2026-06-01"}
    assert client.post("/designations", json=designation, headers=OFFICER).status_code == 403
    assert client.get(f"/persons/{ADULT_NO}/consents", headers=COORDINATOR).status_code == 200
    assert recorder.events == [] and stored(sessions, ADULT_NO) == []


def test_record_returns_lossless_fhir_and_reaches_the_hub(hub: Any) -> None:
    """A recorded consent comes back as FHIR R5 that re-imports to the same consent, and is published as an event."""
    client, recorder, sessions, _ = hub
    resp = client.post("/consents", json=consent_body(), headers=OFFICER)
    assert resp.status_code == 201, resp.text
    resource = resp.json()
    assert resource["resourceType"] == "Consent" and resource["status"] == "active"
    again = parse_consent(resource, municipality_code="999999", keep_resource=False)
    assert to_fhir(again) == resource
    assert again.origin == "tsunagu" and again.version == NOW and again.grantor == "self"
    assert (again.fields, again.period_start, again.period_end) == (
        [Field.ELDERLY, Field.LIVELIHOOD], date(2026, 6, 1), date(2027, 3, 31))
    assert (again.recipient, again.purpose) == ("重層的支援会議", "multi-agency-support")

    [event] = recorder.events
    assert event.type == "jp.tsunagu.consent.recorded.v1" and event.sourcerecord == f"registry:{ADULT_NO}"
    assert event.time == NOW and event.field is None
    published = ConsentV1.model_validate(event.data)
    assert published.model_copy(update={"fhir": None}) == again
    [kept] = stored(sessions, ADULT_NO)
    assert kept.consent_id == again.consent_id and kept.status == "active" and kept.version == NOW


def test_record_refuses_what_it_cannot_record(hub: Any) -> None:
    """A name as grantor, another purpose, a child granting for themself, or a broker outage record nothing."""
    client, recorder, sessions, _ = hub
    assert client.post("/consents", json=consent_body(grantor="山田 花子"), headers=OFFICER).status_code == 400
    assert client.post("/consents", json=consent_body(purpose="research"), headers=OFFICER).status_code == 400
    child = consent_body(subject={"resident_no": CHILD_NO}, fields=["child"])
    assert client.post("/consents", json=child, headers=OFFICER).status_code == 400
    assert client.post("/consents", json={**child, "grantor": "母"}, headers=OFFICER).status_code == 201
    assert client.post("/consents", json=consent_body(subject={}), headers=OFFICER).status_code == 422
    recorder.fail = True
    down = client.post("/consents", json=consent_body(), headers=OFFICER)
    assert down.status_code == 503 and "nothing was recorded" in down.json()["detail"]
    assert stored(sessions, ADULT_NO) == [] and len(stored(sessions, CHILD_NO)) == 1


def test_record_by_record_key(hub: Any) -> None:
    """A subject named only by a record key round-trips through FHIR and is published under that key."""
    client, recorder, _, _ = hub
    body = consent_body(subject={"record": "kodomo:T000123"}, fields=["child"], grantor="guardian")
    resp = client.post("/consents", json=body, headers=OFFICER)
    assert resp.status_code == 201, resp.text
    again = parse_consent(resp.json(), keep_resource=False)
    assert again.subject_record == "kodomo:T000123" and again.subject_resident_no is None
    assert recorder.events[-1].sourcerecord == "kodomo:T000123"


def test_withdraw_and_list(hub: Any) -> None:
    """Withdrawal adds a later inactive version (published as withdrawn); the list shows every version."""
    client, recorder, _, _ = hub
    consent_id = parse_consent(client.post("/consents", json=consent_body(), headers=OFFICER).json()).consent_id
    resp = client.post(f"/consents/{consent_id}/withdraw", headers=OFFICER)
    assert resp.status_code == 200, resp.text
    gone = parse_consent(resp.json(), keep_resource=False)
    assert gone.consent_id == consent_id and gone.status == "inactive" and gone.version > NOW
    assert [e.type for e in recorder.events] == ["jp.tsunagu.consent.recorded.v1", "jp.tsunagu.consent.withdrawn.v1"]
    assert client.post(f"/consents/{consent_id}/withdraw", headers=OFFICER).status_code == 409
    assert client.post("/consents/tsunagu-unknown/withdraw", headers=OFFICER).status_code == 404

    listed = client.get(f"/persons/{ADULT_NO}/consents", headers=OFFICER)
    assert listed.status_code == 200
    versions = listed.json()
    assert [(v["consent_id"], v["status"]) for v in versions] == [(consent_id, "active"), (consent_id, "inactive")]
    assert versions[0]["fields"] == ["elderly", "livelihood"] and versions[0]["origin"] == "tsunagu"
    assert client.get(f"/persons/{CHILD_NO}/consents", headers=OFFICER).json() == []
    assert client.get("/persons/12/consents", headers=OFFICER).status_code == 422


def test_designate(hub: Any) -> None:
    """A coordinator designates a household's 支援会議; the registry keeps it; an unknown household is 404."""
    client, _, sessions, ids = hub
    body = {"household": ids["household"], "member_agencies": ["elderly", "child"], "start": "2026-06-01",
            "end": "2026-12-31", "designated_by": "op-7"}
    resp = client.post("/designations", json=body, headers=COORDINATOR)
    assert resp.status_code == 201, resp.text
    out = resp.json()
    assert out["household"] == ids["household"] and out["designated_by"] == "op-7"
    with sessions() as s:
        [d] = ConsentRepository(s).designations_for(ids["household"])
    assert (d.designation_id, d.member_agencies, d.end) == (out["designation_id"], (Field.ELDERLY, Field.CHILD),
                                                            date(2026, 12, 31))
    assert client.post("/designations", json={**body, "household": "h-unknown"},
                       headers=COORDINATOR).status_code == 404
    assert client.post("/designations", json={**body, "end": "2026-01-01"}, headers=COORDINATOR).status_code in (
        400, 422)


def test_emergency_requires_reason_and_user(hub: Any) -> None:
    """An emergency use without a reason code is 400 and records nothing; the user is the authenticated principal
    (a body naming another user is 403), and with a reason it is kept."""
    client, _, sessions, ids = hub
    base = {"person": ids["child"], "fields": ["child"]}
    assert client.post("/emergency", json=base, headers=COORDINATOR).status_code == 400
    assert client.post("/emergency", json={**base, "user": "op-1"}, headers=COORDINATOR).status_code == 400
    assert client.post("/emergency", json={**base, "reason": "abuse-prevention", "user": "someone-else"},
                       headers=COORDINATOR).status_code == 403
    assert client.post("/emergency", json={**base, "reason": "  ", "user": "op-1"},
                       headers=COORDINATOR).status_code == 400
    free_text = {**base, "reason": "Child seen with bruises", "user": "op-1"}
    assert client.post("/emergency", json=free_text, headers=COORDINATOR).status_code == 400
    with sessions() as s:
        assert ConsentRepository(s).emergencies_for(ids["child"]) == []
    ok = client.post("/emergency", json={**base, "reason": "abuse-prevention"}, headers=COORDINATOR)
    assert ok.status_code == 201, ok.text
    assert ok.json()["user"] == "op-1"
    assert client.post("/emergency", json={**base, "person": "p-unknown", "reason": "abuse-prevention",
                                           "user": "op-1"}, headers=COORDINATOR).status_code == 404
    with sessions() as s:
        [e] = ConsentRepository(s).emergencies_for(ids["child"])
    assert (e.reason, e.user, e.fields, e.at) == ("abuse-prevention", "op-1", (Field.CHILD,), NOW)


@pytest.mark.broker
def test_recorded_consent_reaches_the_intake_topic(kafka: str, fast_settings: Any, tmp_path: Any) -> None:
    """With the real embedded broker, a recorded consent is on the intake topic as a consent.recorded CloudEvent."""
    from hub.kafka.broker import ensure_topics
    from hub.kafka.topicreader import read_topic
    from hub.topics import Topics

    topics = Topics(fast_settings.topic_prefix)
    ensure_topics(kafka, topics, 1)
    database = open_database(f"sqlite:///{tmp_path / 'hub.sqlite'}")
    sessions = database.sessions
    seed(sessions)

    async def post() -> dict[str, Any]:
        publisher = KafkaEventPublisher(kafka, topics.intake)
        await publisher.start()
        try:
            app = FastAPI()
            app.include_router(make_consent_router(sessions, publisher, tokens=TOKENS, municipality_code="999999"))
            import httpx

            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
                resp = await client.post("/consents", json=consent_body(), headers=OFFICER)
            assert resp.status_code == 201, resp.text
            return resp.json()  # type: ignore[no-any-return]
        finally:
            await publisher.stop()

    resource = asyncio.run(post())
    database.close()
    [raw] = list(read_topic(kafka, topics.intake, idle_s=0.5, max_s=30))
    event = CloudEvent.from_json_bytes(raw)
    assert event.type == "jp.tsunagu.consent.recorded.v1" and event.sourcerecord == f"registry:{ADULT_NO}"
    consent = ConsentV1.model_validate(event.data)
    assert consent.fhir == resource and json.loads(json.dumps(resource)) == resource
    assert consent.model_copy(update={"fhir": None}) == parse_consent(resource, keep_resource=False)


def test_emergency_user_of_a_token_without_operator_id_is_its_digest(hub: Any) -> None:
    """A coordinator token configured without an operator id records a stable token digest, never free text."""
    import hashlib

    client, _, _, ids = hub
    r = client.post("/emergency", json={"person": ids["child"], "fields": ["child"], "reason": "abuse-prevention"},
                    headers={"Authorization": "Bearer anon-coord-token"})
    assert r.status_code == 201, r.text
    assert r.json()["user"] == "token-" + hashlib.sha256(b"anon-coord-token").hexdigest()[:10]
