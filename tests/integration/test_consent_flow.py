"""The consent gate inside the hub (HubCore, no broker): deny and audit, release, withdrawal, 支援会議, emergency."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from connectors.fhir_consent import consent_event
from consent.audit import AuditEntry
from consent.fhir import parse_consent, to_fhir
from consent.model import Designation, EmergencyOverride
from consent.store import ConsentRepository, iter_audit
from hub.pipeline.stages import HubCore, RawMessage
from hub.topics import Topics
from schemas.codes import CaseStatus, DisabilityType, Feed, Field, Relation, Topic
from schemas.envelope import CloudEvent, stable_event_id
from schemas.events import (
    CaseV1,
    ConsentV1,
    PersonRecord,
    ResidentObservedV1,
    Sensitive,
    SupportMeetingCaseV1,
    WithdrawalNoticeV1,
)
from schemas.wareki import JST

ELDER_NO, ELDER_HOUSEHOLD = "1055400001", "0000000001"
CLIENT_NO, CLIENT_HOUSEHOLD = "1055400003", "0000000002"
ELDER_NAME, ELDER_KANA = "髙橋　義雄", "タカハシ　ヨシオ"
CLIENT_NAME, CLIENT_KANA = "障害　花子", "ショウガイ　ハナコ"
CLIENT_ADDRESS, CLIENT_PHONE = "中央一丁目2番3号", "090-1234-5678"
SUMMARY = "夜間に大声。家族が疲弊している。"
NOTE = "通院先の主治医と連絡済み"


def at(day: int, month: int = 5, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=JST)


class Hub:
    """HubCore fed by hand: intake → outbox → household stage, collecting what it publishes per topic."""

    def __init__(self, url: str) -> None:
        from hub.bootstrap import Database

        self.database = Database.open(url)
        self.url = url
        self.topics = Topics("flow")
        self.sessions: sessionmaker[Session] = self.database.sessions
        self.core = HubCore(self.sessions, self.topics, today=lambda: date(2026, 6, 1))
        self.offset = 0
        self.published: dict[str, list[bytes]] = defaultdict(list)

    def send(self, *events: CloudEvent) -> None:
        msgs = []
        for ev in events:
            self.offset += 1
            msgs.append(RawMessage(self.topics.intake, 0, self.offset, ev.sourcerecord.encode(), ev.to_json_bytes()))
        self.core.process_intake(msgs)
        self.relay()

    def relay(self) -> None:
        while rows := self.core.outbox_batch(1000):
            self.core.outbox_done([r.seq for r in rows])
            resolved = []
            for r in rows:
                if r.topic == self.topics.resolved:
                    resolved.append(RawMessage(r.topic, 0, r.seq, r.key, r.value))
                else:
                    self.published[r.topic].append(r.value)
            if resolved:
                self.core.process_household(resolved)

    def events(self, topic: str) -> list[CloudEvent]:
        return [CloudEvent.from_json_bytes(v) for v in self.published[topic]]

    def team_ids(self) -> list[str]:
        return [e.id for e in self.events(self.topics.team) if e.type.startswith("jp.tsunagu.case.")]

    def audit(self, event_id: str) -> list[AuditEntry]:
        with self.sessions() as s:
            return [e for e in iter_audit(s) if e.event == event_id]

    def person(self, resident_no: str) -> tuple[str, str]:
        from hub.identity.tables import Person

        with self.sessions() as s:
            p = s.query(Person).filter(Person.resident_no == resident_no).one()
            assert p.household_id is not None
            return p.id, p.household_id

    def close(self) -> None:
        self.database.close()


@pytest.fixture
def hub(database_url: str) -> Iterator[Hub]:
    h = Hub(database_url)
    h.send(resident(ELDER_NO, ELDER_HOUSEHOLD, ELDER_NAME, ELDER_KANA, date(1950, 2, 3)),
           resident(CLIENT_NO, CLIENT_HOUSEHOLD, CLIENT_NAME, CLIENT_KANA, date(1982, 7, 8)))
    yield h
    h.close()


def resident(no: str, household_no: str, name: str, kana: str, birth: date,
             moved_on: date = date(2020, 4, 1)) -> CloudEvent:
    data = ResidentObservedV1(
        resident=PersonRecord(record=f"registry:{no}", name=name, kana=kana, birth_date=birth, resident_no=no,
                              household_no=household_no, relation=Relation.HEAD, address=CLIENT_ADDRESS),
        snapshot="jumin.csv:test", moved_on=moved_on,
    )
    return CloudEvent(id=stable_event_id("registry", no), source="urn:tsunagu:connector:registry",
                      type="jp.tsunagu.resident.observed.v1", time=at(1, 4), sourcerecord=f"registry:{no}",
                      data=data.model_dump(mode="json"))


def elder_case(n: int, when: datetime, change: str = "updated") -> CloudEvent:
    record = "houkatsu:C01-2026-0042"
    case = CaseV1(
        feed=Feed.HOUKATSU, case=record, agency="C01", opened_on=date(2026, 5, 1), status=CaseStatus.IN_PROGRESS,
        topics=[Topic.DEMENTIA],
        subject=PersonRecord(record=record, name=ELDER_NAME, kana=ELDER_KANA, birth_date=date(1950, 2, 3),
                             resident_no=ELDER_NO),
        sensitive=Sensitive(summary=SUMMARY), revision=when.isoformat(),
    )
    return CloudEvent(id=stable_event_id("houkatsu", record, n), source="urn:tsunagu:connector:houkatsu:C01",
                      type=f"jp.tsunagu.case.{change}.v1", time=when, sourcerecord=record, field=Field.ELDERLY,
                      data=case.model_dump(mode="json"))


def client_case(when: datetime) -> CloudEvent:
    record = "shogai:11"
    case = CaseV1(
        feed=Feed.SHOGAI, case="shogai:case:7", opened_on=date(2026, 5, 12), status=CaseStatus.INTAKE,
        subject=PersonRecord(record=record, name=CLIENT_NAME, kana=CLIENT_KANA, birth_date=date(1982, 7, 8),
                             resident_no=CLIENT_NO, address=CLIENT_ADDRESS, phone=CLIENT_PHONE),
        sensitive=Sensitive(summary=SUMMARY, disability_types=[DisabilityType.MENTAL, DisabilityType.DEVELOPMENTAL],
                            notes=[NOTE]),
        revision=when.isoformat(),
    )
    return CloudEvent(id=stable_event_id("shogai", record, when.isoformat()), source="urn:tsunagu:connector:shogai",
                      type="jp.tsunagu.case.opened.v1", time=when, sourcerecord=record, field=Field.DISABILITY,
                      data=case.model_dump(mode="json"))


def fhir_consent(version: date, status: str = "active") -> CloudEvent:
    """A staff-recorded FHIR consent for the elder's elderly-field records, as the consent connector emits it."""
    consent = ConsentV1(consent_id="consent-0042", version=datetime.combine(version, datetime.min.time(), JST),
                        status=status, subject_resident_no=ELDER_NO, grantor="self", fields=[Field.ELDERLY],
                        period_start=date(2026, 5, 1), origin="fhir")
    return consent_event(parse_consent(to_fhir(consent)))


def test_no_consent_denies_then_late_consent_releases_then_withdrawal_stops(hub: Hub) -> None:
    """Without consent an event is held and audited as deny; a consent recorded before it releases it; a withdrawal
    publishes the team's notice, and events after it are denied while a late event from before it still flows."""
    first = elder_case(1, at(10), "opened")
    hub.send(first)
    assert hub.team_ids() == []
    [deny] = hub.audit(first.id)
    assert (deny.decision, deny.route, deny.basis) == ("deny", None, "no-consent")
    assert deny.sourcerecord == first.sourcerecord
    assert deny.person == hub.person(ELDER_NO)[0] and deny.field == "elderly"

    hub.send(fhir_consent(date(2026, 5, 2)))  # recorded 5/2, delivered only now
    assert hub.team_ids() == [first.id]
    permit = hub.audit(first.id)[-1]
    assert (permit.decision, permit.route) == ("permit", "team")
    assert permit.basis == "consent:consent-0042@2026-05-02T00:00:00+09:00"

    hub.send(fhir_consent(date(2026, 5, 20), status="inactive"))
    [notice] = [e for e in hub.events(hub.topics.team) if e.type == "jp.tsunagu.team.withdrawal.v1"]
    data = WithdrawalNoticeV1.model_validate(notice.data)
    assert (data.consent_id, data.fields, data.effective) == ("consent-0042", [Field.ELDERLY], at(20, hour=0))
    assert notice.person == hub.person(ELDER_NO)[0]

    after = elder_case(2, at(25))
    late_from_before = elder_case(3, at(15))
    hub.send(after, late_from_before)
    assert hub.team_ids() == [first.id, late_from_before.id]
    [denied] = hub.audit(after.id)
    assert (denied.decision, denied.basis) == ("deny", "consent-withdrawn")


def test_designated_household_gets_only_the_minimal_form(hub: Hub) -> None:
    """A 支援会議 household's case goes to the support_meeting topic in minimal form: no names, free text or
    disability types; nothing goes to the team."""
    _, household = hub.person(CLIENT_NO)
    with hub.sessions.begin() as s:
        ConsentRepository(s).add_designation(Designation("mtg-1", household, (Field.DISABILITY, Field.ELDERLY),
                                                          date(2026, 5, 1), designated_by="op-3"))
    ev = client_case(at(12))
    hub.send(ev)
    assert hub.team_ids() == []
    [raw] = hub.published[hub.topics.support_meeting]
    out = CloudEvent.from_json_bytes(raw)
    assert out.type == "jp.tsunagu.support_meeting.case.v1" and out.household == household
    form = SupportMeetingCaseV1.model_validate(out.data)
    assert (form.field, form.status, form.opened_on, form.age_band, form.change) == (
        Field.DISABILITY, CaseStatus.INTAKE, date(2026, 5, 12), "40-49", "opened")
    secrets = [CLIENT_NAME, "障害", "花子", CLIENT_KANA, "ハナコ", CLIENT_ADDRESS, CLIENT_PHONE, SUMMARY, NOTE,
               "1982", CLIENT_NO, "mental", "developmental", "精神", "発達", "disability_types", "summary"]
    source_bytes = ev.to_json_bytes()
    assert all(s.encode("utf-8") in source_bytes for s in secrets if s not in ("精神", "発達")), "the check can fail"
    for secret in secrets:
        assert secret.encode("utf-8") not in raw, secret
        assert json.dumps(secret)[1:-1].encode("ascii") not in raw, secret
    [entry] = hub.audit(ev.id)
    assert (entry.decision, entry.route, entry.basis) == ("permit", "support_meeting", "designation:mtg-1")


def test_undesignated_field_or_household_gets_nothing(hub: Hub) -> None:
    """A designation covers only its household and member fields: another household's case stays home."""
    with hub.sessions.begin() as s:
        ConsentRepository(s).add_designation(Designation("mtg-2", hub.person(ELDER_NO)[1], (Field.ELDERLY,),
                                                          date(2026, 5, 1)))
    ev = client_case(at(12))
    hub.send(ev)
    assert hub.published[hub.topics.support_meeting] == [] and hub.team_ids() == []
    assert [e.decision for e in hub.audit(ev.id)] == ["deny"]


def test_emergency_override_applies_only_within_its_window(hub: Hub) -> None:
    """An override older than the emergency window opens nothing; a current one sends the event to the team."""
    from hub.pipeline.adapters import EMERGENCY_WINDOW

    person, _ = hub.person(CLIENT_NO)
    with hub.sessions.begin() as s:
        ConsentRepository(s).record_emergency(EmergencyOverride(
            reason="life-or-body", user="op-9", at=datetime.now(UTC) - EMERGENCY_WINDOW - timedelta(minutes=1),
            person=person, fields=(Field.DISABILITY,)))
    stale = client_case(at(12))
    hub.send(stale)
    assert hub.team_ids() == [] and hub.audit(stale.id)[0].decision == "deny"

    with hub.sessions.begin() as s:
        ConsentRepository(s).record_emergency(EmergencyOverride(
            reason="life-or-body", user="op-9", at=datetime.now(UTC), person=person, fields=(Field.DISABILITY,)))
    current = client_case(at(13))
    hub.send(current)
    assert hub.team_ids() == [current.id]
    [entry] = hub.audit(current.id)
    assert (entry.route, entry.basis) == ("emergency", "emergency:life-or-body")


def test_disclosures_answer_who_received_what(hub: Hub) -> None:
    """`tsunagu consent disclosures` lists the resident's permitted flows (route, basis, time), no case content."""
    import typer
    from typer.testing import CliRunner

    from hub.cli.consent import consent_app

    hub.send(fhir_consent(date(2026, 5, 2)))
    shared, other = elder_case(1, at(10), "opened"), client_case(at(12))
    hub.send(shared, other)
    app = typer.Typer()
    app.add_typer(consent_app, name="consent")
    result = CliRunner().invoke(app, ["consent", "disclosures", "--resident-no", ELDER_NO, "--database", hub.url])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [(r["event"], r["route"], r["recipient"]) for r in rows] == [(shared.id, "team", "重層的支援会議")]
    assert set(rows[0]) == {"event", "sourcerecord", "field", "route", "recipient", "basis", "at"}
    assert rows[0]["basis"].startswith("consent:consent-0042@") and rows[0]["field"] == "elderly"
    for secret in (ELDER_NAME, SUMMARY, "髙橋"):
        assert secret not in result.output
    nobody = CliRunner().invoke(app, ["consent", "disclosures", "--resident-no", "1055499999", "--database", hub.url])
    assert nobody.exit_code == 0 and nobody.stdout == ""


def test_consent_recorded_through_the_api_service_is_applied_by_the_hub(hub: Hub) -> None:
    """The consent API's event (already kept in the registry by the API) releases held events; its withdrawal
    publishes the team's notice."""
    import asyncio

    from hub.http.consent.models import ConsentRequest
    from hub.http.consent.service import ConsentService

    sent: list[CloudEvent] = []

    async def publish(event: CloudEvent) -> None:
        sent.append(event)

    clock = [at(3)]
    service = ConsentService(hub.sessions, publish, now=lambda: clock[0])
    held = elder_case(1, at(10), "opened")
    hub.send(held)
    assert hub.team_ids() == []

    request = ConsentRequest.model_validate({
        "subject": {"resident_no": ELDER_NO}, "fields": ["elderly"], "grantor": "self",
        "period": {"start": "2026-05-01"}, "purpose": "multi-agency-support"})
    consent = asyncio.run(service.record(request))
    hub.send(*sent)
    assert hub.team_ids() == [held.id]
    assert hub.audit(held.id)[-1].basis == f"consent:{consent.consent_id}@2026-05-03T10:00:00+09:00"

    clock[0] = at(20)
    asyncio.run(service.withdraw(consent.consent_id))
    hub.send(sent[-1])
    [notice] = [e for e in hub.events(hub.topics.team) if e.type == "jp.tsunagu.team.withdrawal.v1"]
    assert notice.data["consent_id"] == consent.consent_id
    after = elder_case(2, at(21))
    hub.send(after)
    assert hub.team_ids() == [held.id] and hub.audit(after.id)[0].basis == "consent-withdrawn"


def test_a_registry_move_takes_the_persons_cases_to_the_new_household(hub: Hub) -> None:
    """When a registry snapshot moves a resident to another household, their cases follow it."""
    from hub.pipeline.tables import CaseState

    hub.send(elder_case(1, at(10), "opened"))
    person, before = hub.person(ELDER_NO)
    with hub.sessions() as s:
        assert s.get(CaseState, "houkatsu:C01-2026-0042").household_id == before
    # the registry's 異動日 of the move is later than the resident's first observation
    moved = resident(ELDER_NO, "0000000009", ELDER_NAME, ELDER_KANA, date(1950, 2, 3), moved_on=date(2026, 5, 2))
    hub.send(moved.model_copy(update={"id": stable_event_id("moved", ELDER_NO)}))
    same_person, after = hub.person(ELDER_NO)
    assert same_person == person and after != before
    with hub.sessions() as s:
        assert s.get(CaseState, "houkatsu:C01-2026-0042").household_id == after
